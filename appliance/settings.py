"""Appliance settings: environment variables prefixed ``ENCLAVE_`` (pydantic-settings).

Every field here is documented in docs/configuration.md; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """``~/.local/share/enclave`` — the XDG data directory for the appliance."""
    return Path.home() / ".local" / "share" / "enclave"


class EnclaveSettings(BaseSettings):
    """Everything an operator can configure without touching code."""

    model_config = SettingsConfigDict(env_prefix="ENCLAVE_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data directory.")
    host: str = Field("127.0.0.1", description="Address the web server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the web server.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of an external database; default: SQLCipher in home."
    )
    unseal_keyfile: Path | None = Field(
        None, description="Key file (mode 0600) that unseals at start without a passphrase."
    )
    log_level: str = Field("INFO", description="Minimum log level.")
    log_max_bytes: int = Field(
        10 * 1024 * 1024, ge=4096, description="Rotate a log file at this size."
    )
    log_backups: int = Field(14, ge=1, description="Rotated log files kept (retention).")
    kdf_time_cost: int = Field(3, ge=1, description="Argon2id passes for new vault slots.")
    kdf_memory_kib: int = Field(65536, ge=8192, description="Argon2id memory (KiB) for new slots.")
    kdf_parallelism: int = Field(2, ge=1, le=16, description="Argon2id lanes for new slots.")
    db_busy_timeout_ms: int = Field(10000, ge=100, description="SQLite busy timeout.")
    min_free_disk_mb: int = Field(1024, ge=0, description="doctor warns below this free space.")
    access_token_minutes: int = Field(15, ge=1, le=1440, description="Lifetime of an access JWT.")
    session_idle_minutes: int = Field(
        480, ge=1, description="A sign-in session ends after this long without use."
    )
    session_absolute_hours: int = Field(
        336, ge=1, description="A sign-in session ends this long after sign-in, used or not."
    )
    rate_limit_api_per_minute: int = Field(
        600, ge=1, description="API requests per minute per client address and per credential."
    )
    rate_limit_auth_per_minute: int = Field(
        20, ge=1, description="Login/unseal/init requests per minute per address and credential."
    )
    unseal_max_attempts: int = Field(5, ge=1, description="Wrong passphrases before backoff.")

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        if isinstance(value, str):
            return Path(value).expanduser()
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return level

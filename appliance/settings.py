"""Appliance settings: environment variables prefixed ``ENCLAVE_`` (pydantic-settings).

Every field here is documented in docs/configuration.md; a test keeps the two in step.
"""

from __future__ import annotations

import os
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
    auth_cache_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="How long a verified credential is reused without a database read (0: off).",
    )
    rate_limit_api_per_minute: int = Field(
        600, ge=1, description="API requests per minute per client address and per credential."
    )
    rate_limit_auth_per_minute: int = Field(
        20, ge=1, description="Login/unseal/init requests per minute per address and credential."
    )
    unseal_max_attempts: int = Field(5, ge=1, description="Wrong passphrases before backoff.")
    license_public_keys: Path | None = Field(
        None, description="Vendor public key (PEM) or folder of them; default: the shipped keys."
    )
    license_required: bool = Field(
        False, description="Without an imported license, Enclave is read-only (else unmetered)."
    )
    reservation_expiry_seconds: int = Field(
        3600, ge=1, description="An unsettled credit reservation is released after this long."
    )
    knowledge_max_upload_mb: int = Field(
        256, ge=1, description="Largest file a knowledge base accepts (MB)."
    )
    knowledge_embedder: str = Field(
        "minilm-l6-v2-int8", description="Embedding model of new knowledge bases."
    )
    knowledge_embed_threads: int = Field(
        0, ge=0, description="CPU threads for embedding (0: all cores)."
    )
    knowledge_yara_dir: Path | None = Field(
        None, description="Folder of YARA rules (*.yar) every upload is scanned with."
    )
    knowledge_clamd_socket: Path | None = Field(
        None, description="clamd UNIX socket; when set, every upload is scanned by ClamAV."
    )
    knowledge_bm25_weight: float = Field(
        1.0, ge=0, description="Weight of the BM25 ranking in hybrid search (RRF)."
    )
    knowledge_dense_weight: float = Field(
        1.0, ge=0, description="Weight of the dense ranking in hybrid search (RRF)."
    )
    sandbox_backend: str | None = Field(
        None,
        pattern="^(bwrap|bubblewrap|firejail)$",
        description="Sandbox backend for code tools; default: the strongest that works here.",
    )
    sandbox_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Wall-clock limit of one sandboxed run (seconds)."
    )
    sandbox_cpu_seconds: int = Field(
        10, ge=1, le=3600, description="CPU-time limit of one sandboxed run (seconds)."
    )
    sandbox_memory_mb: int = Field(
        1024, ge=16, le=65536, description="Memory (address space and cgroup) limit per run (MB)."
    )
    sandbox_max_processes: int = Field(
        64, ge=1, le=4096, description="Processes and threads one sandboxed run may have."
    )
    sandbox_max_output_bytes: int = Field(
        1_000_000, ge=1024, description="Bytes of stdout/stderr kept per run (the rest: cut)."
    )
    sandbox_secret_paths: list[Path] = Field(
        default_factory=list,
        description="Extra paths made invisible inside the sandbox (JSON list), besides home.",
    )
    model_threads: int = Field(
        default_factory=lambda: max(1, len(os.sched_getaffinity(0))),
        ge=1,
        le=256,
        description="CPU threads llama.cpp uses per local model (default: every usable core).",
    )
    model_context_length: int = Field(
        4096, ge=512, le=131072, description="Upper bound on a local model's context window."
    )
    model_queue_max_waiting: int = Field(
        32, ge=0, le=10000, description="Requests that may wait for a busy local model."
    )
    model_idle_unload_s: int = Field(
        900, ge=0, description="Seconds a local model stays loaded unused (0: never unload)."
    )
    run_retention_s: int = Field(
        600, ge=10, description="Seconds a finished run's events stay available for resume."
    )

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

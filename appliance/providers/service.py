"""Configured remote model endpoints: create, edit, delete, probe, and the live providers.

An endpoint's API key is write-only: it is encrypted on save (:mod:`appliance.providers.secrets`)
and no method here returns it, except :meth:`ProviderService.engine_config`, which hands it to
the engine provider that sends it. Settings are checked by building the engine's
:class:`~engine.providers.EndpointConfig` (and its TLS context) before anything is saved.

Live providers are cached per endpoint, so each endpoint keeps one connection pool and one
circuit breaker; an edit or delete drops the cached one.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import Conflict, NotFound, ProviderEndpointInvalid
from appliance.keys.secret import DataKey
from appliance.providers import secrets
from appliance.providers.models import ProviderEndpoint
from appliance.store.database import Database
from appliance.store.schema import utcnow
from engine.errors import ProviderConfigInvalid
from engine.providers import AnthropicProvider, EndpointConfig, OpenAICompatibleProvider
from engine.providers.probe import ProbeResult, ProviderKind, build_provider
from engine.providers.remote import tls_verify

KINDS: tuple[ProviderKind, ...] = ("openai_compatible", "anthropic")
DEFAULT_CONTEXT = 4096
# Settings an endpoint may carry besides name, kind, URL, model and key (EndpointConfig fields).
OPTION_FIELDS = frozenset(
    {
        "auth_header",
        "api_version",
        "context_length",
        "tools",
        "json_mode",
        "connect_timeout",
        "read_timeout",
        "total_timeout",
        "max_retries",
        "backoff_initial",
        "backoff_max",
        "max_retry_after",
        "circuit_failures",
        "circuit_cooldown",
        "max_response_bytes",
        "ca_bundle",
        "client_cert",
        "client_key",
        "insecure",
    }
)
RemoteProvider = OpenAICompatibleProvider | AnthropicProvider


@dataclass(frozen=True)
class EndpointSpec:
    """What an admin configures (the API key travels separately)."""

    name: str
    kind: ProviderKind
    base_url: str
    model: str
    options: dict[str, Any]
    enabled: bool = True


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint as the API shows it: never the key, only whether one is stored."""

    id: str
    name: str
    kind: str
    base_url: str
    model: str
    options: dict[str, Any]
    enabled: bool
    has_api_key: bool
    probe: dict[str, Any] | None
    probed_at: datetime | None
    circuit: str
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        for key in ("probed_at", "created_at", "updated_at"):
            value = getattr(self, key)
            out[key] = value.isoformat() if value is not None else None
        return out


def _config(row: ProviderEndpoint | EndpointSpec, api_key: str | None) -> EndpointConfig:
    """The engine's config for a row or spec; ``ProviderEndpointInvalid`` when it cannot work."""
    options = json.loads(row.options) if isinstance(row, ProviderEndpoint) else row.options
    unknown = sorted(set(options) - OPTION_FIELDS)
    if unknown:
        raise ProviderEndpointInvalid(f"Unknown endpoint option {unknown[0]!r}.", field=unknown[0])
    probe = json.loads(row.probe) if isinstance(row, ProviderEndpoint) and row.probe else {}
    settings = dict(options)
    if settings.get("context_length") is None:
        settings["context_length"] = probe.get("context_length") or DEFAULT_CONTEXT
    try:
        return EndpointConfig(
            base_url=row.base_url, model=row.model, name=row.name, api_key=api_key, **settings
        )
    except ProviderConfigInvalid as exc:
        raise ProviderEndpointInvalid(exc.message) from exc
    except TypeError as exc:
        raise ProviderEndpointInvalid(f"An endpoint option has the wrong type: {exc}.") from exc


def _validate(spec: EndpointSpec) -> None:
    if spec.kind not in KINDS:
        raise ProviderEndpointInvalid(
            f"Unknown endpoint kind {spec.kind!r}; use one of {', '.join(KINDS)}.", field="kind"
        )
    config = _config(spec, None)
    try:
        tls_verify(config)
    except ProviderConfigInvalid as exc:
        raise ProviderEndpointInvalid(exc.message, field="tls") from exc


class ProviderService:
    """Endpoints in the database, with API keys sealed under the data key."""

    def __init__(self, db: Database, dek: DataKey) -> None:
        self.db = db
        self._dek = dek
        self._live: dict[str, tuple[datetime, RemoteProvider]] = {}
        # Routes call in from the thread pool: one live provider per endpoint, never two.
        self._live_lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------

    def list_endpoints(self) -> list[EndpointInfo]:
        """Every endpoint, by name."""
        with self.db.read() as session:
            rows = session.scalars(select(ProviderEndpoint).order_by(ProviderEndpoint.name))
            return [self._info(row) for row in rows]

    def get(self, endpoint_id: str) -> EndpointInfo:
        """One endpoint, or ``NotFound``."""
        with self.db.read() as session:
            return self._info(_row(session, endpoint_id))

    def engine_config(self, endpoint_id: str) -> tuple[ProviderKind, EndpointConfig]:
        """The endpoint's kind and engine config *with* its decrypted key (for the engine)."""
        with self.db.read() as session:
            row = _row(session, endpoint_id)
            key = (
                secrets.unseal(self._dek, row.id, row.api_key_sealed)
                if row.api_key_sealed is not None
                else None
            )
            kind: ProviderKind = "anthropic" if row.kind == "anthropic" else "openai_compatible"
            return kind, _config(row, key)

    def provider(self, endpoint_id: str) -> RemoteProvider:
        """The live provider of an endpoint (one per endpoint: its pool and circuit)."""
        with self.db.read() as session:
            updated = _row(session, endpoint_id).updated_at
        with self._live_lock:
            cached = self._live.get(endpoint_id)
            if cached is not None and cached[0] == updated:
                return cached[1]
            kind, config = self.engine_config(endpoint_id)
            live = build_provider(kind, config)
            self._live[endpoint_id] = (updated, live)
            return live

    # --- writing ----------------------------------------------------------------------------

    def create(self, spec: EndpointSpec, api_key: str | None) -> EndpointInfo:
        """Save a new endpoint (its settings checked first); ``Conflict`` on a taken name."""
        _validate(spec)
        endpoint_id = uuid4().hex
        with self.db.write() as session:
            _name_free(session, spec.name, None)
            row = ProviderEndpoint(
                id=endpoint_id,
                name=spec.name,
                kind=spec.kind,
                base_url=spec.base_url,
                model=spec.model,
                options=json.dumps(spec.options, sort_keys=True),
                enabled=spec.enabled,
                api_key_sealed=secrets.seal(self._dek, endpoint_id, api_key) if api_key else None,
            )
            session.add(row)
            session.flush()
            return self._info(row)

    def update(
        self,
        endpoint_id: str,
        changes: dict[str, Any],
        api_key: str | Literal[False] | None = False,
    ) -> EndpointInfo:
        """Apply ``changes`` (any of name, kind, base_url, model, options, enabled).

        ``api_key``: ``False`` keeps the stored key, ``None`` removes it, text replaces it.
        Changing the URL or kind clears the last probe (it described another endpoint).
        """
        with self.db.write() as session:
            row = _row(session, endpoint_id)
            spec = EndpointSpec(
                name=changes.get("name", row.name),
                kind=changes.get("kind", row.kind),
                base_url=changes.get("base_url", row.base_url),
                model=changes.get("model", row.model),
                options=changes.get("options", json.loads(row.options)),
                enabled=changes.get("enabled", row.enabled),
            )
            _validate(spec)
            _name_free(session, spec.name, endpoint_id)
            if spec.base_url != row.base_url or spec.kind != row.kind:
                row.probe, row.probed_at = None, None
            row.name, row.kind, row.base_url, row.model = (
                spec.name,
                spec.kind,
                spec.base_url,
                spec.model,
            )
            row.options = json.dumps(spec.options, sort_keys=True)
            row.enabled = spec.enabled
            if api_key is not False:
                row.api_key_sealed = secrets.seal(self._dek, row.id, api_key) if api_key else None
            row.updated_at = utcnow()
            self._live.pop(endpoint_id, None)
            return self._info(row)

    def delete(self, endpoint_id: str) -> None:
        """Remove an endpoint and its key."""
        with self.db.write() as session:
            session.delete(_row(session, endpoint_id))
        self._live.pop(endpoint_id, None)

    def store_probe(self, endpoint_id: str, result: ProbeResult) -> EndpointInfo:
        """Keep a probe's result (replacing the last one)."""
        with self.db.write() as session:
            row = _row(session, endpoint_id)
            row.probe = json.dumps(result.as_dict(), sort_keys=True)
            row.probed_at = utcnow()
            return self._info(row)

    # --- internals --------------------------------------------------------------------------

    def _info(self, row: ProviderEndpoint) -> EndpointInfo:
        live = self._live.get(row.id)
        return EndpointInfo(
            id=row.id,
            name=row.name,
            kind=row.kind,
            base_url=row.base_url,
            model=row.model,
            options=json.loads(row.options),
            enabled=row.enabled,
            has_api_key=row.api_key_sealed is not None,
            probe=json.loads(row.probe) if row.probe else None,
            probed_at=row.probed_at,
            circuit=live[1].endpoint.breaker.state if live is not None else "closed",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _row(session: Session, endpoint_id: str) -> ProviderEndpoint:
    row = session.get(ProviderEndpoint, endpoint_id)
    if row is None:
        raise NotFound("There is no model endpoint with this id.")
    return row


def _name_free(session: Session, name: str, own_id: str | None) -> None:
    other = session.scalar(select(ProviderEndpoint).where(ProviderEndpoint.name == name))
    if other is not None and other.id != own_id:
        raise Conflict(f"A model endpoint named {name!r} already exists.")

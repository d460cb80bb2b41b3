"""What every remote (HTTP) provider shares: endpoint settings, TLS, timeouts, retries, circuit.

:class:`RemoteEndpoint` opens a streaming HTTP request and hands back the response once its
status line and headers say 2xx. Connection errors, timeouts, 429 and 5xx are retried with
jittered exponential backoff (tenacity), honouring ``Retry-After``; retries happen only here,
before a byte of the body is consumed, so a retried request never duplicates output. Every
attempt passes the endpoint's :class:`~engine.providers.circuit.CircuitBreaker` first.

Secrets: the API key lives in the client's default headers only; it is never logged and never
part of an error message or ``health()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from engine.errors import (
    CircuitOpen,
    EngineError,
    ProviderAuthFailed,
    ProviderConfigInvalid,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from engine.providers.circuit import CircuitBreaker

log = logging.getLogger(__name__)

_JITTER = secrets.SystemRandom()
# How much of an error body is read to explain a refusal.
ERROR_BODY_LIMIT = 16 * 1024


@dataclass(frozen=True)
class EndpointConfig:
    """One remote endpoint and how to talk to it.

    ``base_url`` is the API root the paths hang off (``https://host/v1`` for OpenAI-compatible
    servers, ``https://host`` for Anthropic). ``api_version`` adds an Azure-style
    ``?api-version=`` query; ``auth_header`` picks ``Authorization: Bearer`` or Azure's ``api-key``.
    ``json_mode`` picks how a JSON schema is sent: OpenAI's ``json_schema`` response format, or
    ``json_object`` with a ``schema`` (llama-cpp-python's server).
    """

    base_url: str
    model: str
    name: str = "remote"
    api_key: str | None = field(default=None, repr=False)
    auth_header: Literal["bearer", "api-key"] = "bearer"
    api_version: str | None = None
    context_length: int = 4096
    tools: bool = True
    json_mode: Literal["json_schema", "json_object"] = "json_schema"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    total_timeout: float = 600.0
    max_retries: int = 2
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    # A Retry-After longer than this is not waited for: the error goes to the caller.
    max_retry_after: float = 30.0
    circuit_failures: int = 3
    circuit_cooldown: float = 30.0
    max_response_bytes: int = 8 * 1024 * 1024
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ProviderConfigInvalid(
                "The endpoint URL must be an http or https URL with a host.", endpoint=self.name
            )
        if not self.model:
            raise ProviderConfigInvalid("The endpoint needs a model name.", endpoint=self.name)
        if self.context_length < 1 or self.max_retries < 0 or self.max_response_bytes < 1:
            raise ProviderConfigInvalid(
                "context_length and max_response_bytes must be positive, max_retries >= 0.",
                endpoint=self.name,
            )
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ProviderConfigInvalid("Timeouts must be positive.", endpoint=self.name)


def tls_verify(config: EndpointConfig) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` gets: an SSL context with the custom CA bundle and client
    certificate, ``True`` for the system store, or ``False`` when explicitly insecure."""
    if config.insecure:
        log.warning(
            "TLS certificate verification is disabled for model endpoint %r (insecure=true).",
            config.name,
        )
        return False
    if config.ca_bundle is None and config.client_cert is None:
        return True
    try:
        context = ssl.create_default_context(cafile=config.ca_bundle)
        if config.client_cert is not None:
            context.load_cert_chain(config.client_cert, config.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderConfigInvalid(
            f"The CA bundle or client certificate of endpoint {config.name!r} cannot be loaded: "
            f"{exc.strerror or exc}.",
            endpoint=config.name,
        ) from exc
    return context


class RemoteEndpoint:
    """An HTTP client for one endpoint with its retry policy and circuit breaker."""

    def __init__(
        self,
        config: EndpointConfig,
        headers: dict[str, str],
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.config = config
        self.breaker = breaker or CircuitBreaker(
            config.name, config.circuit_failures, config.circuit_cooldown
        )
        params = {"api-version": config.api_version} if config.api_version else None
        self.client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            params=params,
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.read_timeout,
                pool=config.connect_timeout,
            ),
            verify=tls_verify(config) if transport is None else True,
            transport=transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def open(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """Send a request and return the open 2xx response (its body not yet read).

        The caller reads and closes it (``aclose``). Retryable failures are retried within
        ``max_retries`` and ``total_timeout``; the last error is raised.
        """
        config = self.config
        started = time.monotonic()
        # The first attempt runs outside tenacity: a request that succeeds at once (nearly all
        # of them) pays nothing for the retry machinery.
        try:
            return await self._attempt(method, path, body)
        except EngineError as exc:
            if config.max_retries == 0 or not self._should_retry(exc):
                raise
            first_wait = self._delay(exc, 1)
            remaining = config.total_timeout - (time.monotonic() - started) - first_wait
            if remaining <= 0:
                raise
        await asyncio.sleep(first_wait)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(config.max_retries) | stop_after_delay(remaining),
            # Attempt n of this loop is the request's attempt n + 1.
            wait=lambda state: self._delay(_outcome_error(state), state.attempt_number + 1),
            retry=retry_if_exception(self._should_retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(method, path, body)
        raise AssertionError("tenacity reraises the last error")

    def record_stream_failure(self) -> None:
        """A body that failed after its 2xx headers (dropped, stalled) counts against the
        endpoint like a failed connection."""
        self.breaker.record_failure()

    def _should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, CircuitOpen) or not isinstance(exc, EngineError):
            return False
        if isinstance(exc, ProviderRateLimited) and exc.retry_after is not None:
            return exc.retry_after <= self.config.max_retry_after
        return exc.retryable

    def _delay(self, exc: BaseException | None, failed_attempts: int) -> float:
        """Seconds before the next attempt: the endpoint's Retry-After when it sent one, else
        jittered exponential backoff ("full jitter": uniform up to the exponential bound)."""
        if isinstance(exc, ProviderRateLimited) and exc.retry_after is not None:
            return exc.retry_after
        bound = self.config.backoff_initial * 2 ** (failed_attempts - 1)
        return _JITTER.uniform(0, min(self.config.backoff_max, bound))

    async def _attempt(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        self.breaker.before_request()
        request = self.client.build_request(method, path, json=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            self.breaker.record_failure()
            raise ProviderTimeout(
                f"Endpoint {self.config.name!r} did not answer in time ({type(exc).__name__}).",
                endpoint=self.config.name,
            ) from exc
        except httpx.TransportError as exc:
            verify = _certificate_error(exc)
            if verify is not None:
                # Not the endpoint being down: retrying or opening the circuit cannot help.
                self.breaker.release_trial()
                raise ProviderConfigInvalid(
                    f"The TLS certificate of endpoint {self.config.name!r} could not be "
                    f"verified ({verify.verify_message}); configure its CA bundle.",
                    endpoint=self.config.name,
                ) from exc
            self.breaker.record_failure()
            raise ProviderUnavailable(
                f"Endpoint {self.config.name!r} cannot be reached ({type(exc).__name__}).",
                endpoint=self.config.name,
            ) from exc
        if response.is_success:
            self.breaker.record_success()
            return response
        error = await self._refusal(response)
        if isinstance(error, ProviderUnavailable | ProviderTimeout):
            self.breaker.record_failure()
        else:
            self.breaker.release_trial()
        raise error

    async def _refusal(self, response: httpx.Response) -> EngineError:
        """The engine error for a non-2xx answer (its body read, up to a limit, for the reason)."""
        detail = await _error_detail(response)
        status = response.status_code
        name = self.config.name
        context: dict[str, Any] = {"endpoint": name, "status": status}
        if status in (401, 403):
            return ProviderAuthFailed(
                f"Endpoint {name!r} refused the credentials (HTTP {status}): {detail}", **context
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return ProviderRateLimited(
                f"Endpoint {name!r} is rate limiting (HTTP 429): {detail}",
                retry_after=retry_after,
                **context,
            )
        if status == 408:
            return ProviderTimeout(f"Endpoint {name!r} timed out (HTTP 408).", **context)
        if status >= 500:
            return ProviderUnavailable(
                f"Endpoint {name!r} failed (HTTP {status}): {detail}", **context
            )
        return ProviderRejected(
            f"Endpoint {name!r} rejected the request (HTTP {status}): {detail}", **context
        )


def _outcome_error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure somewhere in ``exc``'s causes, if any."""
    seen: BaseException | None = exc
    for _ in range(10):  # a bound: exception chains can, rarely, loop
        if seen is None or isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _error_detail(response: httpx.Response) -> str:
    raw = b""
    # The reason is a courtesy: a body that breaks off still leaves the status to report.
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) >= ERROR_BODY_LIMIT:
                break
    await response.aclose()
    text = raw[:ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
    return text[:300] or response.reason_phrase or "no detail"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

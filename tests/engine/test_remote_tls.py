"""Enterprise TLS for remote providers, against a real HTTPS server on loopback: a custom CA
bundle, a client certificate (mutual TLS), and the explicit insecure flag. The certificates are
made for the test with ``cryptography``."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import ProviderConfigInvalid, ProviderUnavailable
from engine.providers import ChatMessage, ChatRequest, EndpointConfig, OpenAICompatibleProvider
from tests.engine.model_servers import free_port

HELLO = ChatRequest((ChatMessage("user", "Say hello."),), max_tokens=8)
HAPPY = (
    b'data: {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _issue(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey | None, ca: bool = False,
) -> x509.Certificate:  # fmt: skip
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key_path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Enclave test CA", ca_key, None, None, ca=True)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_key_path = _write(
        tmp_path / "server.pem", _issue("127.0.0.1", server_key, ca, ca_key), server_key
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_key_path = _write(
        tmp_path / "client.pem", _issue("enclave", client_key, ca, ca_key), client_key
    )
    return Pki(
        tmp_path / "ca.pem", tmp_path / "server.pem", server_key_path,
        tmp_path / "client.pem", client_key_path,
    )  # fmt: skip


@asynccontextmanager
async def https_server(pki: Pki, require_client_cert: bool) -> AsyncIterator[str]:
    """A real HTTPS server answering chat completions with ``HAPPY``; yields its base URL."""

    async def completions(request: Request) -> Response:
        return Response(HAPPY, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        lifespan="off",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        ssl_ca_certs=str(pki.ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        await task


def tls_provider(base_url: str, **tls: Any) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        EndpointConfig(base_url=base_url, model="m", name="tls", max_retries=0, **tls)
    )


async def test_custom_ca_bundle_verifies_the_server(pki: Pki) -> None:
    async with https_server(pki, require_client_cert=False) as url:
        trusted = tls_provider(url, ca_bundle=str(pki.ca))
        assert (await trusted.complete(HELLO))[0] == "Hello"
        await trusted.aclose()
        # Without the bundle the system store does not know this CA: refused, not retried.
        default = tls_provider(url)
        with pytest.raises(ProviderConfigInvalid, match="certificate"):
            await default.complete(HELLO)
        await default.aclose()


async def test_client_certificate_for_mutual_tls(pki: Pki) -> None:
    async with https_server(pki, require_client_cert=True) as url:
        with_cert = tls_provider(
            url,
            ca_bundle=str(pki.ca),
            client_cert=str(pki.client_cert),
            client_key=str(pki.client_key),
        )
        assert (await with_cert.complete(HELLO))[0] == "Hello"
        await with_cert.aclose()
        without = tls_provider(url, ca_bundle=str(pki.ca))
        with pytest.raises((ProviderUnavailable, ProviderConfigInvalid)):
            await without.complete(HELLO)
        await without.aclose()


async def test_insecure_flag_skips_verification(pki: Pki) -> None:
    async with https_server(pki, require_client_cert=False) as url:
        insecure = tls_provider(url, insecure=True)
        assert (await insecure.complete(HELLO))[0] == "Hello"
        await insecure.aclose()

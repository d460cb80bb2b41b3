"""The HTTP layer in-process: seal gate, problem+json errors, health/readiness, init/unseal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from appliance import Appliance, EnclaveSettings
from appliance.web import create_app
from tests.conftest import PASSPHRASE

PROBLEM = "application/problem+json"


@pytest.fixture
def fresh(settings: EnclaveSettings) -> Appliance:
    return Appliance(settings)


def _app(appliance: Appliance) -> FastAPI:
    return create_app(appliance, with_ui=False)


@pytest.fixture
async def client(fresh: Appliance) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(fresh))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c
    fresh.seal()


async def test_uninitialised_answers_only_health_and_setup(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["state"] == "uninitialised"
    assert (await client.get("/readyz")).status_code == 503
    sealed = await client.get("/api/v1/agents")
    assert sealed.status_code == 503
    assert sealed.headers["content-type"] == PROBLEM
    body = sealed.json()
    assert body["code"] == "sealed"
    assert body["status"] == 503
    assert "set up" in body["detail"]
    page = await client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/setup"


async def test_first_run_init_then_ready(client: httpx.AsyncClient, fresh: Appliance) -> None:
    weak = await client.post("/api/v1/init", json={"passphrase": "short"})
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_passphrase"
    assert fresh.state.value == "uninitialised"
    missing = await client.post("/api/v1/init", json={})
    assert missing.status_code == 422
    assert missing.json()["code"] == "invalid_request"
    assert "passphrase" in missing.json()["detail"]
    done = await client.post("/api/v1/init", json={"passphrase": PASSPHRASE})
    assert done.status_code == 201
    assert done.json() == {"state": "unsealed"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"unsealed": True, "database": True, "migrations": True}
    again = await client.post("/api/v1/init", json={"passphrase": PASSPHRASE})
    assert again.status_code == 409
    assert again.json()["code"] == "already_initialised"


async def test_sealed_gate_and_unseal(client: httpx.AsyncClient, fresh: Appliance) -> None:
    await client.post("/api/v1/init", json={"passphrase": PASSPHRASE})
    fresh.seal()
    assert (await client.get("/readyz")).status_code == 503
    gated = await client.post("/api/v1/anything", json={})
    assert gated.status_code == 503
    assert gated.json()["code"] == "sealed"
    page = await client.get("/", headers={"Accept": "text/html"})
    assert page.headers["location"] == "/unseal"
    wrong = await client.post("/api/v1/unseal", json={"passphrase": "not the passphrase"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "wrong_passphrase"
    assert (await client.get("/api/v1/status")).json()["failed_unseal_attempts"] == 1
    ok = await client.post("/api/v1/unseal", json={"passphrase": PASSPHRASE})
    assert ok.status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    twice = await client.post("/api/v1/unseal", json={"passphrase": PASSPHRASE})
    assert twice.status_code == 409
    assert twice.json()["code"] == "already_unsealed"


async def test_backoff_returns_429_with_retry_after(
    client: httpx.AsyncClient, fresh: Appliance
) -> None:
    await client.post("/api/v1/init", json={"passphrase": PASSPHRASE})
    fresh.seal()
    for _ in range(fresh.settings.unseal_max_attempts):
        assert (
            await client.post("/api/v1/unseal", json={"passphrase": "nope nope nope"})
        ).status_code == 401
    blocked = await client.post("/api/v1/unseal", json={"passphrase": PASSPHRASE})
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) >= 1
    assert fresh.state.value == "sealed"


async def test_request_ids_and_not_found(client: httpx.AsyncClient, fresh: Appliance) -> None:
    await client.post("/api/v1/init", json={"passphrase": PASSPHRASE})
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith\ttabs"})
    assert replaced.headers["x-request-id"] != "bad id\twith\ttabs"
    assert len(replaced.headers["x-request-id"]) == 32
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["code"] == "not_found"


async def test_crash_is_a_problem_without_internals(fresh: Appliance) -> None:
    fresh.initialise(PASSPHRASE)
    app = _app(fresh)

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        response = await c.get("/api/v1/boom")
    fresh.seal()
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


async def test_openapi_is_gated_while_sealed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")
    # The schema is public metadata, but it is gated like every API while sealed.
    assert response.status_code == 503


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/api/v1/anything", "/setup"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    api = await client.get("/healthz")
    assert api.headers["content-security-policy"].startswith("default-src 'none'")


async def test_api_docs_are_local_and_inline_free(
    client: httpx.AsyncClient, fresh: Appliance
) -> None:
    fresh.initialise(PASSPHRASE)
    page = await client.get("/api/docs")
    assert page.status_code == 200
    assert "://" not in page.text  # every asset is same-origin
    assert "<script>" not in page.text  # only src= scripts: the CSP allows no inline code
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-init.js"):
        response = await client.get(f"/api/docs-assets/{asset}")
        assert response.status_code == 200, asset
    init = await client.get("/api/docs-assets/swagger-init.js")
    assert "/api/openapi.json" in init.text
    schema = await client.get("/api/openapi.json")
    assert schema.json()["info"]["title"] == "Enclave"

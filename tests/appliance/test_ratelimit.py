"""Token buckets and the rate-limit middleware: 429 + Retry-After under a burst, others served."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from appliance import Appliance, EnclaveSettings
from appliance.web import create_app
from appliance.web.ratelimit import TokenBuckets, route_class
from tests.conftest import PASSPHRASE, make_settings


def test_bucket_allows_capacity_then_refills() -> None:
    buckets = TokenBuckets(capacity=3, period_s=60)
    assert [buckets.take("k", now=0).allowed for _ in range(4)] == [True, True, True, False]
    denied = buckets.take("k", now=0)
    assert denied.retry_after_s == 20  # one token every 20 s
    assert buckets.take("k", now=20).allowed
    assert buckets.take("other", now=0).allowed


def test_bucket_memory_is_bounded() -> None:
    buckets = TokenBuckets(capacity=1, max_keys=10)
    for n in range(100):
        buckets.take(f"k{n}", now=0)
    assert len(buckets._buckets) == 10


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/auth/login", "auth"),
        ("/api/v1/auth/refresh", "auth"),
        ("/api/v1/auth/me", "api"),
        ("/api/v1/unseal", "auth"),
        ("/api/v1/init", "auth"),
        ("/api/v1/status", "api"),
        ("/healthz", None),
        ("/_nicegui/3.18.0/static/vue.js", None),
    ],
)
def test_route_classes(path: str, expected: str | None) -> None:
    assert route_class(path) == expected


@pytest.fixture
def limited(home_dir) -> EnclaveSettings:
    return make_settings(home_dir, rate_limit_api_per_minute=5, rate_limit_auth_per_minute=2)


@pytest.fixture
async def client(limited: EnclaveSettings) -> AsyncIterator[httpx.AsyncClient]:
    appliance = Appliance(limited)
    appliance.initialise(PASSPHRASE)
    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c
    appliance.seal()


async def test_burst_gets_429_with_retry_after_and_ratelimit_headers(
    client: httpx.AsyncClient,
) -> None:
    noisy = {"Authorization": "Bearer enc_noisy_key"}
    statuses = [(await client.get("/api/v1/status", headers=noisy)).status_code for _ in range(5)]
    assert statuses == [200] * 5
    blocked = await client.get("/api/v1/status", headers=noisy)
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.headers["ratelimit-limit"] == "5"
    assert blocked.headers["ratelimit-remaining"] == "0"


async def test_auth_routes_are_stricter(client: httpx.AsyncClient) -> None:
    codes = [
        (await client.post("/api/v1/unseal", json={"passphrase": "guess guess guess"})).status_code
        for _ in range(3)
    ]
    assert codes == [409, 409, 429]  # already unsealed twice, then limited
    assert (await client.get("/api/v1/status")).status_code == 200  # the api class is separate


async def test_burst_from_one_key_is_limited_while_another_key_is_served(
    limited: EnclaveSettings,
) -> None:
    appliance = Appliance(limited)
    appliance.initialise(PASSPHRASE)
    app = create_app(appliance, with_ui=False)
    first = httpx.ASGITransport(app=app, client=("10.0.0.1", 1000))
    second = httpx.ASGITransport(app=app, client=("10.0.0.2", 1000))
    async with (
        httpx.AsyncClient(transport=first, base_url="http://127.0.0.1") as a,
        httpx.AsyncClient(transport=second, base_url="http://127.0.0.1") as b,
    ):
        for _ in range(5):
            assert (
                await a.get("/api/v1/status", headers={"Authorization": "Bearer k1"})
            ).status_code == 200
        assert (
            await a.get("/api/v1/status", headers={"Authorization": "Bearer k1"})
        ).status_code == 429
        served = await b.get("/api/v1/status", headers={"Authorization": "Bearer k2"})
        assert served.status_code == 200
        assert served.headers["ratelimit-remaining"] == "4"
    appliance.seal()

"""The knowledge API end to end: create, upload (multipart, streamed), job progress, search
in three modes with citations, bad files, duplicates, ACL and analytics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import Appliance
from tests.appliance.knowledge.conftest import Api
from tests.conftest import PASSPHRASE, make_settings
from tests.engine.knowledge.kb_samples import pdf_bytes

MANUAL = (
    b"# Pump maintenance\n\nThe centrifugal pump must be lubricated every 500 hours with "
    b"lithium grease.\n\n## Shutdown\n\nClose the inlet valve before opening the casing.\n"
)


async def upload(
    api: Api, kb_id: str, name: str, data: bytes, who: str = "alice", tags: str | None = None
) -> Any:
    params = {"tags": tags} if tags else None
    return await api.client.post(
        f"/api/v1/knowledge-bases/{kb_id}/documents",
        files={"file": (name, data, "application/octet-stream")},
        headers=api.auth(who),
        params=params,
    )


async def wait_job(
    api: Api, job_id: str, who: str = "alice", timeout: float = 120
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = (await api.client.get(f"/api/v1/jobs/{job_id}", headers=api.auth(who))).json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.1)


async def new_base(api: Api, name: str = "Plant manuals", who: str = "alice") -> str:
    created = await api.client.post(
        "/api/v1/knowledge-bases", json={"name": name}, headers=api.auth(who)
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_upload_ingest_and_search_in_every_mode(api: Api) -> None:
    kb = await new_base(api)
    first = await upload(api, kb, "pump-manual.md", MANUAL, tags="pumps")
    assert first.status_code == 202, first.text
    pdf = pdf_bytes(
        ["Boiler pressure must stay below 12 bar.", "Check the boiler safety valve weekly."]
    )
    second = await upload(api, kb, "Boiler Guide.pdf", pdf)
    assert second.status_code == 202
    for accepted in (first, second):
        job = await wait_job(api, accepted.json()["job_id"])
        assert (job["state"], job["progress"], job["error_code"]) == ("done", 1.0, None)
        assert job["done"] == job["total"] > 0

    for mode in ("bm25", "dense", "hybrid"):
        found = await api.client.get(
            f"/api/v1/knowledge-bases/{kb}/search",
            params={
                "q": "how often should the boiler safety valve be checked",
                "mode": mode,
                "k": 3,
            },
            headers=api.auth("alice"),
        )
        assert found.status_code == 200, found.text
        top = found.json()["hits"][0]
        assert top["document_id"] == second.json()["document_id"], mode
        assert (top["document_name"], top["filename"], top["page"]) == (
            "Boiler Guide",
            "Boiler Guide.pdf",
            2,
        )
        assert "weekly" in top["text"] and top["end"] > top["start"] >= 0 and top["score"] > 0

    by_section = await api.client.get(
        f"/api/v1/knowledge-bases/{kb}/search",
        params={"q": "inlet valve casing", "mode": "bm25", "tag": "pumps"},
        headers=api.auth("alice"),
    )
    hit = by_section.json()["hits"][0]
    assert hit["section"] == "Pump maintenance › Shutdown"
    assert hit["filename"] == "pump-manual.md"
    base = (await api.client.get(f"/api/v1/knowledge-bases/{kb}", headers=api.auth("alice"))).json()
    assert base["progress"]["documents"] == {"ready": 2}
    assert base["progress"]["chunks"] == base["progress"]["chunks_embedded"] > 0
    docs = (
        await api.client.get(f"/api/v1/knowledge-bases/{kb}/documents", headers=api.auth("alice"))
    ).json()
    assert {d["status"] for d in docs} == {"ready"}
    assert {d["kind"] for d in docs} == {"markdown", "pdf"}


async def test_user_text_is_never_fts_syntax(api: Api) -> None:
    kb = await new_base(api)
    job = await wait_job(api, (await upload(api, kb, "m.md", MANUAL)).json()["job_id"])
    assert job["state"] == "done"
    for q in ['"unbalanced', "NEAR(pump valve)", "pump*", "-grease", "col:pump", "^ OR AND", "***"]:
        found = await api.client.get(
            f"/api/v1/knowledge-bases/{kb}/search",
            params={"q": q, "mode": "bm25"},
            headers=api.auth("alice"),
        )
        assert found.status_code == 200, (q, found.text)


BAD_FILES = [
    ("cut.pdf", pdf_bytes(["a", "b", "c"])[:300], "file_corrupt"),
    ("locked.pdf", pdf_bytes(["secret"], password="pw"), "file_encrypted"),
    ("fake.pdf", b"plain text pretending", "file_type_mismatch"),
    ("bad.txt", "é".encode() * 10 + b"\xff\xfe oops", "text_decode_failed"),
    ("image.txt", b"GIF89a" + b"\0" * 100, "file_type_unsupported"),
]


async def test_bad_files_fail_their_job_with_a_specific_code(api: Api) -> None:
    kb = await new_base(api)
    accepted = {}
    for name, data, code in BAD_FILES:
        answer = await upload(api, kb, name, data)
        assert answer.status_code == 202, name
        accepted[code] = answer.json()
    for code, ids in accepted.items():
        job = await wait_job(api, ids["job_id"])
        assert (job["state"], job["error_code"]) == ("failed", code)
        assert job["error_message"]
        doc = await api.client.get(
            f"/api/v1/knowledge-bases/{kb}/documents/{ids['document_id']}",
            headers=api.auth("alice"),
        )
        assert (doc.json()["status"], doc.json()["error_code"], doc.json()["chunk_count"]) == (
            "failed",
            code,
            0,
        )
    good = await upload(api, kb, "fine.md", MANUAL)  # the worker is still healthy
    assert (await wait_job(api, good.json()["job_id"]))["state"] == "done"


async def test_empty_upload_is_refused_and_nothing_is_kept(api: Api) -> None:
    kb = await new_base(api)
    answer = await upload(api, kb, "empty.txt", b"")
    assert (answer.status_code, answer.json()["code"]) == (422, "file_empty")
    docs = await api.client.get(
        f"/api/v1/knowledge-bases/{kb}/documents", headers=api.auth("alice")
    )
    assert docs.json() == []


async def test_not_multipart_is_a_clear_error(api: Api) -> None:
    kb = await new_base(api)
    answer = await api.client.post(
        f"/api/v1/knowledge-bases/{kb}/documents", json={"file": "x"}, headers=api.auth("alice")
    )
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_request")


async def test_duplicate_content_is_detected(api: Api) -> None:
    kb = await new_base(api)
    first = await upload(api, kb, "a.md", MANUAL)
    again = await upload(api, kb, "copy-of-a.md", MANUAL)
    assert (again.status_code, again.json()["code"]) == (409, "duplicate_document")
    assert again.json()["context"]["document_id"] == first.json()["document_id"]


async def test_acl_on_search_and_documents(api: Api) -> None:
    kb = await new_base(api)
    await wait_job(api, (await upload(api, kb, "m.md", MANUAL)).json()["job_id"])
    search = f"/api/v1/knowledge-bases/{kb}/search"
    for path in (f"/api/v1/knowledge-bases/{kb}", f"/api/v1/knowledge-bases/{kb}/documents"):
        assert (await api.client.get(path, headers=api.auth("bob"))).status_code == 404
    denied = await api.client.get(search, params={"q": "pump"}, headers=api.auth("bob"))
    assert denied.status_code == 404
    assert (await api.client.get("/api/v1/knowledge-bases", headers=api.auth("bob"))).json() == []
    assert (
        await api.client.get(search, params={"q": "pump"}, headers=api.auth("auditor"))
    ).status_code == 403
    assert (await upload(api, kb, "x.md", b"# x\nintruder", who="bob")).status_code == 404

    bob = api.appliance.services.users.find_user("bob")
    assert bob is not None
    shared = await api.client.post(
        f"/api/v1/knowledge-bases/{kb}/grants",
        json={"user_id": bob.id, "level": "use"},
        headers=api.auth("alice"),
    )
    assert shared.status_code == 204
    allowed = await api.client.get(
        search, params={"q": "pump lubrication"}, headers=api.auth("bob")
    )
    assert allowed.status_code == 200 and allowed.json()["hits"]
    # `use` lets Bob read, not change.
    assert (await upload(api, kb, "x.md", b"# x\nintruder", who="bob")).status_code == 404
    assert (
        await api.client.delete(f"/api/v1/knowledge-bases/{kb}", headers=api.auth("bob"))
    ).status_code == 404


async def test_search_analytics_for_admins(api: Api) -> None:
    kb = await new_base(api)
    await wait_job(api, (await upload(api, kb, "m.md", MANUAL)).json()["job_id"])
    for q in ("grease interval", "zyxwvut qqqq"):
        await api.client.get(
            f"/api/v1/knowledge-bases/{kb}/search",
            params={"q": q, "mode": "bm25"},
            headers=api.auth("alice"),
        )
    zero = (
        await api.client.get("/api/v1/knowledge/searches/zero-hits", headers=api.auth("admin"))
    ).json()
    assert [z["query"] for z in zero] == ["zyxwvut qqqq"]
    assert zero[0]["knowledge_base_ids"] == [kb] and zero[0]["mode"] == "bm25"
    slowest = (
        await api.client.get("/api/v1/knowledge/searches/slowest", headers=api.auth("admin"))
    ).json()
    assert len(slowest) == 2 and slowest[0]["latency_ms"] >= slowest[1]["latency_ms"]
    assert (
        await api.client.get("/api/v1/knowledge/searches/slowest", headers=api.auth("alice"))
    ).status_code == 403


@pytest.fixture
def small_limit_appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = Appliance(make_settings(tmp_path / "small", knowledge_max_upload_mb=1))
    app.initialise(PASSPHRASE)
    yield app
    app.seal()


async def test_five_gigabyte_sparse_upload_stops_at_the_limit(
    small_limit_appliance: Appliance, tmp_path: Path
) -> None:
    import httpx

    from appliance.identity.models import Role
    from appliance.knowledge import close_runtime
    from appliance.web import create_app

    app = small_limit_appliance
    user = app.services.users.create_user("carol", "builder password for tests", Role.BUILDER)
    token = app.services.tokens.login(user).access_token
    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as fh:
        fh.truncate(5 * 1024**3)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        boundary = b"kbboundary"
        yield (
            b"--"
            + boundary
            + b'\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n\r\n'
        )
        with sparse.open("rb") as fh:
            while block := fh.read(256 * 1024):
                sent += len(block)
                yield block
        yield b"\r\n--" + boundary + b"--\r\n"

    transport = httpx.ASGITransport(app=create_app(app, with_ui=False))
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "multipart/form-data; boundary=kbboundary",
    }
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            kb = (
                await client.post(
                    "/api/v1/knowledge-bases",
                    json={"name": "big"},
                    headers=headers | {"Content-Type": "application/json"},
                )
            ).json()["id"]
            answer = await client.post(
                f"/api/v1/knowledge-bases/{kb}/documents", content=body(), headers=headers
            )
            assert (answer.status_code, answer.json()["code"]) == (413, "file_too_large")
            docs = await client.get(f"/api/v1/knowledge-bases/{kb}/documents", headers=headers)
            assert docs.json() == []
    finally:
        close_runtime(app)
    assert sent < 64 * 1024 * 1024  # stopped near the 1 MB limit, not after 5 GB
    assert list(app.blobs.iter_ids()) == []
    assert not any((app.home.blobs_dir / ".tmp").glob("*"))

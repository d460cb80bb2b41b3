"""Revoking a knowledge base grant: 204, audited, and the grantee loses search at once."""

from __future__ import annotations

from tests.appliance.knowledge.conftest import Api
from tests.appliance.knowledge.test_kb_api import MANUAL, new_base, upload, wait_job


async def test_revoking_a_grant_ends_access_and_is_audited(api: Api) -> None:
    kb = await new_base(api)
    await wait_job(api, (await upload(api, kb, "m.md", MANUAL)).json()["job_id"])
    bob = api.appliance.services.users.find_user("bob")
    assert bob is not None
    grants = f"/api/v1/knowledge-bases/{kb}/grants"
    search = f"/api/v1/knowledge-bases/{kb}/search"
    shared = await api.client.post(
        grants, json={"user_id": bob.id, "level": "use"}, headers=api.auth("alice")
    )
    assert shared.status_code == 204
    found = await api.client.get(search, params={"q": "pump"}, headers=api.auth("bob"))
    assert found.status_code == 200 and found.json()["hits"]

    # Bob (use only) cannot revoke; neither grantee nor both is a clear 422.
    assert (
        await api.client.delete(grants, params={"user_id": bob.id}, headers=api.auth("bob"))
    ).status_code == 404
    assert (await api.client.delete(grants, headers=api.auth("alice"))).status_code == 422
    assert (
        await api.client.delete(
            grants, params={"user_id": bob.id, "group_id": 1}, headers=api.auth("alice")
        )
    ).status_code == 422
    assert (
        await api.client.get(search, params={"q": "pump"}, headers=api.auth("bob"))
    ).status_code == 200

    revoked = await api.client.delete(grants, params={"user_id": bob.id}, headers=api.auth("alice"))
    assert revoked.status_code == 204
    after = await api.client.get(search, params={"q": "pump"}, headers=api.auth("bob"))
    assert after.status_code == 404
    assert (
        await api.client.get(f"/api/v1/knowledge-bases/{kb}", headers=api.auth("bob"))
    ).status_code == 404
    assert (await api.client.get("/api/v1/knowledge-bases", headers=api.auth("bob"))).json() == []
    # Revoking again changes nothing and is not an error (DELETE is idempotent).
    again = await api.client.delete(grants, params={"user_id": bob.id}, headers=api.auth("alice"))
    assert again.status_code == 204

    audit = api.appliance.audit
    shares = audit.query(action="knowledge_base.share")
    unshares = audit.query(action="knowledge_base.unshare")
    assert [e["target"] for e in shares] == [f"knowledge_base:{kb}"]
    assert len(unshares) == 2 and unshares[0]["details"]["user_id"] == bob.id
    assert all(e["actor"] == f"user:{people_id(api, 'alice')}" for e in shares + unshares)


async def test_sharing_with_someone_who_does_not_exist_is_404(api: Api) -> None:
    kb = await new_base(api)
    missing = await api.client.post(
        f"/api/v1/knowledge-bases/{kb}/grants",
        json={"user_id": 987654, "level": "use"},
        headers=api.auth("alice"),
    )
    assert missing.status_code == 404
    assert api.appliance.audit.query(action="knowledge_base.share") == []


def people_id(api: Api, name: str) -> int:
    user = api.appliance.services.users.find_user(name)
    assert user is not None
    return user.id

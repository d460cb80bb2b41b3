"""An administrator's network allowlist for one agent's code tools, end to end: set over the
API (admins only, validated, audited), carried into that agent's runs, enforced by the real
sandbox (allowlist relay) — and absent for every other agent.

The model is the engine's scripted provider (the test is about the sandbox, not about making a
model write this exact program); the agents service, the run service, the tools, the sandbox and
the audit log are the appliance's own. The "server" is a real TCP echo server in a network
namespace behind a veth pair (tests/sandbox/remote_host.py): loopback and this machine's own
addresses are never reachable from a sandbox, whatever the allowlist says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appliance import Appliance, Role
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from appliance.runs.hub import Resolved
from appliance.web import create_app
from engine.agents import AgentDefinition
from engine.providers.scripted import ScriptedProvider
from sandbox import detect_backends
from tests.sandbox.remote_host import RemoteHost, make_remote_host, usable

PW = "tool network password 123"
WITH_ALLOWLIST = [b.name for b in detect_backends() if b.usable and b.allowlist]

pytestmark = pytest.mark.skipif(
    not WITH_ALLOWLIST or not usable(),
    reason="needs a sandbox backend with the network allowlist (root) and iproute2",
)

PROBE = """
import socket
try:
    with socket.create_connection(({ip!r}, {port}), timeout=3) as s:
        s.sendall(b"hi")
        print("reply", s.recv(100).decode())
except OSError as exc:
    print("unreachable", exc.errno)
"""


class ScriptedHub:
    """The model: each run plays one python call with ``code``, then answers."""

    def __init__(self) -> None:
        self.code = ""

    def resolve(self, definition: AgentDefinition, key: str, allow_remote: bool = True) -> Resolved:
        call = json.dumps({"tool": "python", "arguments": {"code": self.code}})
        script = [call, json.dumps({"tool": "respond"}), "Done."]
        return Resolved(ScriptedProvider(list(script)), "local", "scripted")


@pytest.fixture
def remote() -> Iterator[RemoteHost]:
    host = make_remote_host()
    try:
        yield host
    finally:
        host.stop()


def _agent(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"provider": "local", "model": "scripted"},
        "tools": [{"name": "python"}],
        "limits": {"max_steps": 3},
    }


async def _python_output(appliance: Appliance, user: User, agent_id: str) -> dict[str, Any]:
    run = await appliance.runs.start(user, agent_id, "connect")
    events = [e async for e in run.events.follow()]
    result = next(e for e in events if e.kind == "tool_result")
    return dict(result.data)


async def test_only_the_admin_granted_agent_reaches_its_destination(
    appliance: Appliance, remote: RemoteHost
) -> None:
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    admin = users.create_user("admin", PW, Role.ADMIN)
    builder = users.create_user("builder", PW, Role.BUILDER)
    agents = appliance.services.agents
    granted = agents.create(builder, _agent("mirror user")).id
    plain = agents.create(builder, _agent("no network")).id
    port = remote.ports[0]
    entry = f"{remote.ip}:{port}"

    transport = httpx.ASGITransport(app=create_app(appliance, with_ui=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:

        def auth(user: User) -> dict[str, str]:
            token = appliance.services.tokens.login(user).access_token
            return {"Authorization": f"Bearer {token}"}

        url = f"/api/v1/agents/{granted}/tool-network"
        # A builder — even the agent's owner — may not grant network.
        refused = await client.put(url, json={"allowlist": [entry]}, headers=auth(builder))
        assert refused.status_code == 403, refused.text
        # Bad entries: a typed 422 naming the entry, and nothing saved.
        for bad in ("no-port", "127.0.0.1:80", "10.0.0.1:0", "[::1]:22", 5):
            answer = await client.put(url, json={"allowlist": [bad]}, headers=auth(admin))
            assert answer.status_code == 422, (bad, answer.text)
            problem = answer.json()
            assert problem["code"] == "tool_network_invalid", problem
            assert problem["context"]["entry"], problem
        assert agents.get(builder, granted).tool_network_allowlist == ()
        done = await client.put(url, json={"allowlist": [entry, entry]}, headers=auth(admin))
        assert done.status_code == 200, done.text
        assert done.json()["tool_network_allowlist"] == [entry]
        shown = await client.get(f"/api/v1/agents/{granted}", headers=auth(builder))
        assert shown.json()["tool_network_allowlist"] == [entry]
        missing = await client.put(
            "/api/v1/agents/" + "0" * 32 + "/tool-network",
            json={"allowlist": []},
            headers=auth(admin),
        )
        assert missing.status_code == 404

    # A builder's new version of the agent keeps the grant (it is not in the definition) …
    agents.update(builder, granted, {**_agent("mirror user"), "description": "v2"})
    assert agents.get(builder, granted).tool_network_allowlist == (entry,)

    hub = ScriptedHub()
    hub.code = PROBE.format(ip=remote.ip, port=port)
    appliance.runs.hub = hub  # type: ignore[assignment]
    before = remote.counts[port]
    reached = await _python_output(appliance, builder, granted)
    assert f"reply echo:{port}:hi" in reached["content"], reached
    assert remote.counts[port] == before + 1
    blocked = await _python_output(appliance, builder, plain)
    assert "unreachable" in blocked["content"] and "reply" not in blocked["content"], blocked
    assert remote.counts[port] == before + 1

    audit = appliance.services.audit
    grant = audit.query(None, None, None, "agent.tool_network", 10, 0)
    assert [e["details"]["allowlist"] for e in grant] == [[entry]]
    assert grant[0]["actor"] == f"user:{admin.id}" and grant[0]["target"] == f"agent:{granted}"
    runs = audit.query(None, None, None, "tool.execute", 10, 0)
    by_agent = {e["target"]: e["details"] for e in runs}
    assert by_agent[f"agent:{granted}"]["network_allowlist"] == entry
    assert len(by_agent[f"agent:{granted}"]["policy_hash"]) == 64
    assert "network_allowlist" not in by_agent[f"agent:{plain}"]
    # Different network, different policy: the hashes tell the two runs apart.
    assert by_agent[f"agent:{granted}"]["policy_hash"] != by_agent[f"agent:{plain}"]["policy_hash"]

    # Revoked: the agent is back to no network.
    agents.tool_network.set(admin, granted, [])
    again = await _python_output(appliance, builder, granted)
    assert "unreachable" in again["content"], again
    assert remote.counts[port] == before + 1

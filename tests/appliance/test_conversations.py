"""ConversationService: whole-turn appends, owner-only privacy, search, titles, feedback."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from appliance import Appliance, Role
from appliance.agents.models import Feedback, Message
from appliance.errors import InvalidRequest, NotFound
from appliance.identity.models import User
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from models import load_catalog

PW = "conversation password 12345"
AGENT = {
    "schema_version": 2,
    "name": "Helper",
    "model": {"provider": "local", "model": load_catalog().default},
}
TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 1234*5678?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "name": "calculator", "arguments": {"expression": "1234*5678"}}
        ],
    },
    {"role": "tool", "content": "7006652", "tool_call_id": "c1"},
    {
        "role": "assistant",
        "content": "It is 7006652.",
        "citations": [{"source": "calculator"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 6},
    },
]


@pytest.fixture
def people(appliance: Appliance) -> dict[str, User]:
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    return {
        name: users.create_user(name, PW, role)
        for name, role in [
            ("alice", Role.BUILDER),
            ("bob", Role.MEMBER),
            ("boss", Role.ADMIN),
        ]
    }


@pytest.fixture
def agent_id(appliance: Appliance, people: dict[str, User]) -> str:
    agents = appliance.services.agents
    info = agents.create(people["alice"], AGENT)
    agents.share(people["alice"], info.id, "use", user_id=people["bob"].id)
    return info.id


def count(appliance: Appliance, model: type[Any]) -> int:
    with appliance.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_turn_is_appended_whole(
    appliance: Appliance, people: dict[str, User], agent_id: str
) -> None:
    conversations = appliance.services.conversations
    alice = people["alice"]
    conv = conversations.create(alice, agent_id, 1)
    stored = conversations.append(alice, conv["id"], TURN, run_id="run-1")
    assert [m["seq"] for m in stored] == [1, 2, 3, 4]
    second = conversations.append(alice, conv["id"], [{"role": "user", "content": "thanks"}])
    assert second[0]["seq"] == 5
    messages = conversations.messages(alice, conv["id"])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[1]["tool_calls"] == TURN[1]["tool_calls"]
    assert messages[2]["tool_call_id"] == "c1"
    assert messages[3]["citations"] == [{"source": "calculator"}]
    assert messages[3]["usage"] == {"prompt_tokens": 40, "completion_tokens": 6}
    assert {m["run_id"] for m in messages} == {"run-1", None}
    assert conversations.get(alice, conv["id"])["updated_at"] >= conv["updated_at"]


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "wizard", "content": "x"},
        {"role": "assistant", "content": 42},
        {"role": "assistant", "content": "x", "tool_calls": "not a list"},
        {"role": "assistant", "content": "x", "usage": {"n": float("nan")}},
        {"role": "assistant", "content": "x", "extra": 1},
        "not an object",
    ],
)
def test_a_failed_append_leaves_the_conversation_unchanged(
    appliance: Appliance, people: dict[str, User], agent_id: str, bad: Any
) -> None:
    conversations = appliance.services.conversations
    alice = people["alice"]
    conv = conversations.create(alice, agent_id, 1)
    conversations.append(alice, conv["id"], TURN[:1])
    before = conversations.get(alice, conv["id"]), conversations.messages(alice, conv["id"])
    rows = count(appliance, Message)
    # The bad message comes after good ones, which were already written in the transaction.
    with pytest.raises(InvalidRequest) as caught:
        conversations.append(alice, conv["id"], [*TURN[1:3], bad], run_id="run-2")
    assert caught.value.context["field"] == "messages.2"
    after = conversations.get(alice, conv["id"]), conversations.messages(alice, conv["id"])
    assert after == before
    assert count(appliance, Message) == rows
    # The next good turn continues the numbering with no gap.
    assert conversations.append(alice, conv["id"], TURN[1:2])[0]["seq"] == 2


def test_creating_needs_the_agent(
    appliance: Appliance, people: dict[str, User], agent_id: str
) -> None:
    conversations = appliance.services.conversations
    stranger = UserService(appliance.db, hasher=make_hasher(1, 8192, 1)).create_user(
        "stranger", PW, Role.MEMBER
    )
    with pytest.raises(NotFound):
        conversations.create(stranger, agent_id, 1)
    with pytest.raises(NotFound):
        conversations.create(people["bob"], agent_id, 2)  # no such version
    assert conversations.create(people["bob"], agent_id, 1, "  my   chat ")["title"] == "my chat"


def test_only_the_owner_reads_a_conversation(
    appliance: Appliance, people: dict[str, User], agent_id: str
) -> None:
    conversations = appliance.services.conversations
    bob = people["bob"]
    conv = conversations.create(bob, agent_id, 1, "private matter")
    stored = conversations.append(bob, conv["id"], TURN)
    for name in ("alice", "boss"):  # the agent's owner and an admin alike
        other = people[name]
        with pytest.raises(NotFound):
            conversations.get(other, conv["id"])
        with pytest.raises(NotFound):
            conversations.messages(other, conv["id"])
        with pytest.raises(NotFound):
            conversations.append(other, conv["id"], TURN[:1])
        with pytest.raises(NotFound):
            conversations.rename(other, conv["id"], "mine now")
        with pytest.raises(NotFound):
            conversations.delete(other, conv["id"])
        with pytest.raises(NotFound):
            conversations.feedback(other, stored[3]["id"], 1)
        assert conversations.search(other, "private") == []
        assert conversations.list_conversations(other) == []
    assert len(conversations.messages(bob, conv["id"])) == 4


def test_search_titles_and_messages_with_escaping(
    appliance: Appliance, people: dict[str, User], agent_id: str
) -> None:
    conversations = appliance.services.conversations
    alice = people["alice"]
    budget = conversations.create(alice, agent_id, 1, "Budget 2027")
    growth = conversations.create(alice, agent_id, 1, "Plans")
    conversations.append(alice, growth["id"], [{"role": "user", "content": "Growth of 100% in Q3"}])
    other = conversations.create(alice, agent_id, 1, "Other")
    conversations.append(alice, other["id"], [{"role": "user", "content": "Growth of 1000 in Q3"}])

    def found(q: str) -> set[str]:
        return {c["id"] for c in conversations.search(alice, q)}

    assert found("budget") == {budget["id"]}
    assert found("GROWTH") == {growth["id"], other["id"]}
    assert found("100%") == {growth["id"]}  # % is a character, not a wildcard
    assert found("1_0") == set()  # and so is _
    assert found("' OR 1=1 --") == set()
    with pytest.raises(InvalidRequest):
        conversations.search(alice, "   ")


def test_titles(appliance: Appliance, people: dict[str, User], agent_id: str) -> None:
    conversations = appliance.services.conversations
    alice = people["alice"]
    conv = conversations.create(alice, agent_id, 1)
    assert conversations.set_title(alice, conv["id"], "Generated title") is True
    assert conversations.rename(alice, conv["id"], "My title")["title"] == "My title"
    assert conversations.set_title(alice, conv["id"], "Another generated one") is False
    assert conversations.get(alice, conv["id"])["title"] == "My title"
    with pytest.raises(InvalidRequest):
        conversations.rename(alice, conv["id"], "x" * 201)


def test_feedback_and_delete(appliance: Appliance, people: dict[str, User], agent_id: str) -> None:
    conversations = appliance.services.conversations
    bob = people["bob"]
    conv = conversations.create(bob, agent_id, 1)
    stored = conversations.append(bob, conv["id"], TURN)
    answer = stored[3]["id"]
    conversations.feedback(bob, answer, -1, "wrong number")
    conversations.feedback(bob, answer, 1, "actually right", conversation_id=conv["id"])
    messages = conversations.messages(bob, conv["id"])
    assert messages[3]["feedback"] == {"thumbs": 1, "comment": "actually right"}
    assert messages[0]["feedback"] is None
    assert count(appliance, Feedback) == 1
    for thumbs in (0, 2, True):
        with pytest.raises(InvalidRequest):
            conversations.feedback(bob, answer, thumbs)
    with pytest.raises(InvalidRequest):
        conversations.feedback(bob, stored[0]["id"], 1)  # the user's own message
    with pytest.raises(NotFound):
        conversations.feedback(bob, answer, 1, conversation_id="0" * 32)

    conversations.delete(bob, conv["id"])
    with pytest.raises(NotFound):
        conversations.get(bob, conv["id"])
    assert count(appliance, Message) == 0
    assert count(appliance, Feedback) == 0

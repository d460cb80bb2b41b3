"""Chat request validation: an invalid request never reaches a model."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import ChatMessage, ChatRequest, EngineError, InvalidChatRequest, Usage


@pytest.mark.parametrize(
    "build",
    [
        lambda: ChatRequest(()),
        lambda: ChatRequest((ChatMessage("robot", "hi"),)),
        lambda: ChatRequest((ChatMessage("user", "hi"),), max_tokens=0),
        lambda: ChatRequest((ChatMessage("user", "hi"),), max_tokens=8193),
        lambda: ChatRequest((ChatMessage("user", "hi"),), temperature=-1.0),
        lambda: ChatRequest((ChatMessage("user", "hi"),), stop=("",)),
    ],
)
def test_invalid_requests_are_refused(build: Callable[[], ChatRequest]) -> None:
    with pytest.raises(InvalidChatRequest) as info:
        build()
    assert isinstance(info.value, EngineError) and info.value.code == "invalid_chat_request"


def test_valid_request_keeps_its_defaults() -> None:
    request = ChatRequest((ChatMessage("system", "Be brief."), ChatMessage("user", "hi")))
    assert (request.max_tokens, request.temperature, request.stop) == (256, 0.7, ())
    assert Usage(3, 4).total_tokens == 7

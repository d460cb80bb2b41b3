"""NiceGUI ``user``-fixture tests of the pages' logic: no browser, the real app.

Each test gets the appliance's real ASGI app (``appliance.web.create_app``, which loads the UI
through its ``enclave.ui`` entry point and ``ui.run_with``) over a real SQLCipher home, and a
simulated NiceGUI user (``nicegui.testing.User``) talking to it in process through httpx. The
home is a copy of one made per session (initialised, four people of every role), so a test
costs an unseal, not an initialise.

The pages sign people in and call the JSON API from the browser (``ui.session``: a ``fetch``
in ``ui.run_javascript``, the cookie being HttpOnly). The simulated user has no JavaScript, so
:class:`PageUser` plays the browser for exactly those snippets: the same request, sent through
the same cookie jar to the same app, answered the way the snippet returns it. The language
selector's ``document.cookie`` write is played the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import background_tasks, ui
from nicegui.functions.download import download
from nicegui.functions.navigate import Navigate
from nicegui.functions.notify import notify
from nicegui.testing import User, UserInteraction
from nicegui.testing.general import nicegui_reset_globals

from appliance import Appliance, Role
from appliance.identity.models import User as Account
from appliance.identity.passwords import make_hasher
from appliance.identity.users import UserService
from appliance.knowledge import close_runtime
from appliance.web import create_app
from tests.conftest import PASSPHRASE, make_settings

PASSWORD = "page logic password 1357"
PEOPLE = {"ada": Role.ADMIN, "bea": Role.BUILDER, "max": Role.MEMBER, "aud": Role.AUDITOR}

_FETCH = re.compile(
    r"await fetch\((?P<path>'[^']*'|\"[^\"]*\"), \{method: (?P<method>'\w+'|\"\w+\")"
)
_CSRF = re.compile(r"'X-CSRF-Token': (?P<token>\"[^\"]*\")")
_BODY = re.compile(r"body: (?P<body>\"(?:[^\"\\]|\\.)*\")\}\);")
_COOKIE = re.compile(r"^document\.cookie = (?P<value>\"(?:[^\"\\]|\\.)*\");")


def _literal(text: str) -> str:
    """A JS string literal as written by ui/session.py ('…' or a JSON string)."""
    return text[1:-1] if text.startswith("'") else str(json.loads(text))


class PageUser(User):
    """NiceGUI's simulated user, plus the few browser calls the pages make in JavaScript."""

    async def should_see(
        self,
        target: Any = None,
        *,
        kind: Any = None,
        marker: Any = None,
        content: Any = None,
        retries: int = 50,
    ) -> None:
        """As NiceGUI's, but waits up to 5 s: page handlers run in worker threads, and the
        machine running the tests may be busy."""
        parent: Any = super()
        await parent.should_see(target, kind=kind, marker=marker, content=content, retries=retries)

    def _patch_outbox_emit_function(self) -> None:
        super()._patch_outbox_emit_function()
        client = self._client
        simulated = client.outbox._emit

        async def emit(message: Any) -> None:
            _target, kind, data = message
            if kind == "run_javascript":
                answer = self._browser_call(str(data["code"]))
                if answer is not None:
                    await simulated(message)
                    background_tasks.create(
                        self._answer(client, data["request_id"], answer), name="browser call"
                    )
                    return
            await simulated(message)

        client.outbox._emit = emit  # type: ignore[method-assign]

    def _browser_call(self, code: str) -> Any:
        """A coroutine answering ``code`` as a browser would, or None to leave it alone."""
        fetch = _FETCH.search(code)
        if fetch is not None:
            return self._fetch(code, _literal(fetch["path"]), _literal(fetch["method"]))
        cookie = _COOKIE.match(code)
        if cookie is not None:
            return self._set_cookie(str(json.loads(cookie["value"])))
        if "localStorage.getItem" in code:
            return self._value(None)
        return None

    async def _value(self, value: Any) -> Any:
        return value

    async def _set_cookie(self, assignment: str) -> bool:
        pair, *attributes = [part.strip() for part in assignment.split(";")]
        name, _eq, value = pair.partition("=")
        if "max-age=0" in attributes:
            self.http_client.cookies.delete(name)
        else:
            self.http_client.cookies.set(name, value, domain="test.local", path="/")
        return True

    async def _fetch(self, code: str, path: str, method: str) -> Any:
        headers = {}
        if (csrf := _CSRF.search(code)) is not None:
            headers["X-CSRF-Token"] = _literal(csrf["token"])
        content = None
        if (body := _BODY.search(code)) is not None:
            content = str(json.loads(body["body"]))
            headers["Content-Type"] = "application/json"
        response = await self.http_client.request(method, path, headers=headers, content=content)
        try:
            parsed = response.json()
        except ValueError:
            parsed = {}
        if "detail: b.detail" in code:
            return {"status": response.status_code, "detail": parsed.get("detail", "")}
        if "return true" in code:
            return True
        return {"status": response.status_code, "body": parsed}

    async def _answer(self, client: Any, request_id: str, answer: Any) -> None:
        client.handle_javascript_response({"request_id": request_id, "result": await answer})


class Pages:
    """One simulated browser on one appliance, and the people in it."""

    def __init__(self, user: PageUser, appliance: Appliance, people: dict[str, Account]) -> None:
        self.user = user
        self.appliance = appliance
        self.people = people

    async def sign_in(self, name: str, password: str = PASSWORD) -> None:
        """Sign ``name`` in the way the sign-in page's script does (sets the session cookie)."""
        answer = await self.user.http_client.post(
            "/api/v1/auth/session", json={"username": name, "password": password}
        )
        assert answer.status_code == 200, answer.text

    async def open_as(self, name: str, path: str) -> None:
        """Sign ``name`` in and open ``path``."""
        await self.sign_in(name)
        await self.user.open(path)

    def by_id(self, dom_id: str) -> UserInteraction[ui.element]:
        """The element with the HTML id ``dom_id`` (the ids the e2e tests use too)."""
        found = {e for e in self.user.current_layout.descendants() if e.props.get("id") == dom_id}
        assert found, f"no element with id {dom_id!r} on the page:\n{self.user.current_layout}"
        return UserInteraction(self.user, found, None)

    def element(self, dom_id: str) -> Any:
        """The one element with the HTML id ``dom_id``."""
        (element,) = self.by_id(dom_id).elements
        return element

    def labelled(self, label: str) -> UserInteraction[ui.element]:
        """The element whose ``label`` or ``aria-label`` is exactly ``label``."""
        found = {
            e
            for e in self.user.current_layout.descendants()
            if label in (e.props.get("label"), e.props.get("aria-label"))
        }
        assert found, f"nothing labelled {label!r} on the page:\n{self.user.current_layout}"
        return UserInteraction(self.user, found, None)

    def field(self, label: str) -> Any:
        """The one element labelled ``label`` (to read or set its value)."""
        (element,) = self.labelled(label).elements
        return element

    async def wait(self, check: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait until ``check()`` is true (page handlers run as background tasks)."""
        for _ in range(int(seconds / 0.05)):
            if check():
                return
            await asyncio.sleep(0.05)
        assert check(), f"timed out; the page is:\n{self.user.current_layout}"

    async def wait_for_path(self, path: str) -> None:
        """Wait until the simulated browser has opened ``path`` (after a navigation)."""
        await self.wait(lambda: bool(self.user.back_history) and self.user.back_history[-1] == path)

    def error_text(self) -> str:
        """What the page's error lines (``ui.frame.error_line``) say now, joined."""
        lines = [
            str(getattr(e, "text", ""))
            for e in self.user.current_layout.descendants()
            if e.props.get("role") == "alert" and "text-negative" in e.classes
        ]
        return " ".join(t for t in lines if t)

    def text_of(self, dom_id: str) -> str:
        """The text of the element with id ``dom_id``."""
        return str(getattr(self.element(dom_id), "text", ""))


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, sealed home with one person of each role (fast but real Argon2id)."""
    home = tmp_path_factory.mktemp("ui-template") / "home"
    appliance = Appliance(make_settings(home))
    appliance.initialise(PASSPHRASE)
    users = UserService(appliance.db, hasher=make_hasher(1, 8192, 1))
    for name, role in PEOPLE.items():
        users.create_user(name, PASSWORD, role)
    appliance.seal()
    return home


@asynccontextmanager
async def simulate(
    appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PageUser]:
    """The appliance's app with NiceGUI reset around it, and a simulated user of it."""
    with nicegui_reset_globals():
        monkeypatch.setenv("NICEGUI_USER_SIMULATION", "true")
        try:
            app = create_app(appliance)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app)
                async with httpx.AsyncClient(
                    transport=transport,
                    base_url="http://test.local",
                    headers={"Accept": "text/html,*/*;q=0.8"},  # as a browser asks for pages
                ) as client:
                    yield PageUser(client)
                    await _settle()
        finally:
            ui.navigate = Navigate()
            ui.notify = notify
            ui.download = download


async def _settle(seconds: float = 10.0) -> None:
    """Let navigations and simulated browser calls still in flight finish before the app stops
    (a test may end on the action that starts one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        pending = [
            t
            for t in background_tasks.running_tasks
            if t.get_name().startswith(("navigate", "browser call")) and not t.done()
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=deadline - loop.time())


def _people(appliance: Appliance) -> dict[str, Account]:
    users = appliance.services.users
    return {u.username: u for u in users.list_users()}


@pytest.fixture
def fresh_home(template_home: Path, tmp_path: Path) -> Path:
    """A copy of the template home for one test."""
    home = tmp_path / "home"
    shutil.copytree(template_home, home)
    return home


@pytest.fixture
async def pages(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Pages]:
    """An unsealed appliance with four people, served to a simulated browser."""
    appliance = Appliance(make_settings(fresh_home))
    appliance.unseal(PASSPHRASE)
    async with simulate(appliance, monkeypatch) as user:
        yield Pages(user, appliance, _people(appliance))
    close_runtime(appliance)  # the knowledge worker, if a page started it
    _no_errors_logged(caplog)


@pytest.fixture
async def sealed_pages(
    fresh_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Pages]:
    """The same home, sealed (as after a restart)."""
    appliance = Appliance(make_settings(fresh_home))
    async with simulate(appliance, monkeypatch) as user:
        yield Pages(user, appliance, {})
    _no_errors_logged(caplog)


@pytest.fixture
async def empty_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Pages]:
    """A home that was never initialised (the first run)."""
    appliance = Appliance(make_settings(tmp_path / "new-home"))
    async with simulate(appliance, monkeypatch) as user:
        yield Pages(user, appliance, {})
    _no_errors_logged(caplog)


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]

"""The notification bell in every signed-in page's header, through a simulated user: each person
sees the notices addressed to them (an admin also the admins' shared ones, nobody else), as
text, and marks them read."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.credits.notifications import ADMINS, notify, user_audience
from tests.ui.conftest import Pages

MARKUP = "Budget reached <b id='injected'>bold</b>"
ADMIN_ONLY = "Admins only: the license expires in 7 days."


def _seed(pages: Pages) -> None:
    """A notice for max (with markup in it) and one for the admins, as the credits code adds
    them."""
    with pages.appliance.db.write() as session:
        notify(session, "budget_reached", MARKUP, audience=user_audience(pages.people["max"].id))
        notify(session, "license_expiring", ADMIN_ONLY)


def _texts(pages: Pages) -> list[str]:
    return [
        str(getattr(e, "text", ""))
        for e in pages.user.current_layout.descendants()
        if "notice-message" in e.classes
    ]


def _badge(pages: Pages) -> Any:
    return pages.element("notice-count")


async def test_a_member_sees_their_notice_as_text_and_marks_it_read(pages: Pages) -> None:
    _seed(pages)
    await pages.open_as("max", "/chat")
    await pages.wait(lambda: _texts(pages) == [MARKUP])  # the markup is text, not HTML
    badge = _badge(pages)
    assert (badge.text, badge.visible) == ("1", True)
    assert "Notifications: 1 unread" in pages.element("notice-bell").props["aria-label"]
    assert not any(e.props.get("id") == "injected" for e in pages.user.current_layout.descendants())
    await pages.user.should_not_see(ADMIN_ONLY)

    service = pages.appliance.services.metering.notifications
    (notice,) = service.list_for(pages.people["max"].id, False)
    pages.by_id(f"notice-read-{notice['id']}").click()
    await pages.wait(lambda: not _badge(pages).visible)
    assert service.list_for(pages.people["max"].id, False, True) == []
    # The admins' notice is still unread: a member cannot touch it.
    assert len(service.list_for(pages.people["ada"].id, True, True)) == 1


@pytest.mark.parametrize("name", ["bea", "aud"])
async def test_builders_and_auditors_do_not_see_the_admins_notices(pages: Pages, name: str) -> None:
    _seed(pages)
    await pages.open_as(name, "/account")
    await pages.user.should_see("No notifications.")
    assert not _badge(pages).visible
    assert _texts(pages) == []


async def test_an_admin_sees_the_shared_notices_on_every_page(pages: Pages) -> None:
    _seed(pages)
    with pages.appliance.db.write() as session:
        notify(
            session, "budget_reached", "Your own.", audience=user_audience(pages.people["ada"].id)
        )
    for path in ("/", "/admin", "/chat"):
        await pages.open_as("ada", path)
        await pages.wait(lambda: _texts(pages) == ["Your own.", ADMIN_ONLY])
        assert _badge(pages).text == "2"
    assert MARKUP not in _texts(pages)  # max's own notice is max's
    with pages.appliance.db.write() as session:
        notify(session, "low_balance", "Credits are at 20 %.", audience=ADMINS)
    pages.by_id("notice-bell").click()  # opening the menu re-reads the notices
    await pages.wait(lambda: _badge(pages).text == "3")

"""Who may open a page: every page but first run, unseal and sign-in needs a signed-in user
with one of the page's roles (deny by default)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from fastapi import Request
from nicegui import ui

from appliance import Appliance, EnclaveError
from appliance.identity.models import User
from ui.frame import add_to_header, frame, heading
from ui.i18n import N_, _
from ui.notices import NoticeBell
from ui.offload import in_thread
from ui.session import SignedIn, signed_in

CHAT_ROLES = frozenset({"admin", "builder", "member"})
BUILDER_ROLES = frozenset({"admin", "builder"})
ADMIN_ROLES = frozenset({"admin"})
OVERSIGHT_ROLES = frozenset({"admin", "auditor"})
ALL_ROLES = frozenset({"admin", "builder", "member", "auditor"})
ROLE_NAMES = {
    "admin": N_("admin"),
    "builder": N_("builder"),
    "member": N_("member"),
    "auditor": N_("auditor"),
}


def role_name(role: str) -> str:
    """A role's name in the page's language (unknown roles as they are)."""
    return _(ROLE_NAMES[role]) if role in ROLE_NAMES else role


@dataclass(frozen=True)
class Viewer:
    """The signed-in person looking at a page."""

    who: SignedIn
    user: User

    @property
    def role(self) -> str:
        """Their role, as a plain string."""
        return str(self.who.role)


def _load(appliance: Appliance, request: Request) -> tuple[SignedIn, User] | None:
    who = signed_in(appliance, request)
    if who is None:
        return None
    try:
        return who, appliance.services.users.get_user(who.user_id)
    except EnclaveError:
        return None


async def viewer(
    appliance: Appliance, request: Request, roles: Collection[str], title: str
) -> Viewer | None:
    """The page's viewer; None after sending anonymous visitors to sign in, or after telling a
    signed-in person without one of ``roles`` that the page is not theirs (``title``: the
    page's translated name)."""
    found = await in_thread(_load, appliance, request)
    if found is None:
        ui.navigate.to("/login")
        return None
    who, user = found
    add_to_header(NoticeBell(appliance, user.id, who.role).draw)
    if who.role not in roles:
        with frame(title, role=who.role):
            heading(_("Not available to you"))
            ui.label(
                _(
                    "The {title} page is for {roles} accounts; you are signed in as {user} "
                    "({role}). Ask an administrator if you need access."
                ).format(
                    title=title,
                    roles=", ".join(role_name(r) for r in sorted(roles)),
                    user=who.username,
                    role=role_name(who.role),
                )
            ).props("id=refused role=alert")
        return None
    return Viewer(who, user)

"""First administrator, sign-in, and the status page (which needs a signed-in user)."""

from __future__ import annotations

from fastapi import Request
from nicegui import run, ui

from appliance import Appliance, EnclaveError, Role, __version__
from ui.access import role_name
from ui.frame import add_to_header, error_line, frame, heading
from ui.i18n import N_, _
from ui.notices import NoticeBell
from ui.offload import in_thread
from ui.session import sign_in, sign_out, signed_in


def add_account_pages(appliance: Appliance) -> None:
    """Register /setup/admin, /login and / for ``appliance``."""

    def has_users() -> bool:
        return appliance.services.users.has_users()

    @ui.page("/setup/admin")
    async def first_admin_page() -> None:
        if await run.io_bound(has_users):
            ui.navigate.to("/login")
            return
        with frame(_("Administrator")):
            heading(_("Create the administrator"))
            ui.label(
                _(
                    "This account manages users, keys and settings. Its password needs at least "
                    "12 characters and must not contain the user name."
                )
            )
            username = ui.input(_("User name"), value="admin")
            password = ui.input(_("Password"), password=True, password_toggle_button=True)
            repeat = ui.input(_("Repeat password"), password=True)
            error = error_line()

            async def submit() -> None:
                error.text = ""
                if password.value != repeat.value:
                    error.text = _("The two passwords differ.")
                    return
                try:
                    services = appliance.services
                    await run.io_bound(
                        lambda: services.audited(
                            lambda: services.users.create_user(
                                username.value, password.value, Role.ADMIN, only_if_first=True
                            ),
                            action="user.create",
                            actor="first-run",
                            target=lambda u: f"user:{u.id}",
                            details={"role": "admin"},
                        )
                    )
                except EnclaveError as exc:
                    error.text = exc.message
                    return
                problem = await sign_in(username.value, password.value)
                # Signed in: the rest of the first run (license, model, first agent, chat).
                ui.navigate.to("/login" if problem else "/setup/license")

            ui.button(_("Create administrator"), on_click=submit).props("id=admin-submit")

    @ui.page("/login")
    async def login_page() -> None:
        if not await run.io_bound(has_users):
            ui.navigate.to("/setup/admin")
            return
        with frame(_("Sign in")):
            heading(_("Sign in"))
            username = ui.input(_("User name"))
            password = ui.input(_("Password"), password=True, password_toggle_button=True)
            error = error_line()

            async def submit() -> None:
                error.text = ""
                problem = await sign_in(username.value or "", password.value or "")
                if problem:
                    error.text = problem
                    password.value = ""
                    return
                ui.navigate.to("/")

            password.on("keydown.enter", submit)
            ui.button(_("Sign in"), on_click=submit).props("id=login-submit")

    @ui.page("/")
    async def status_page(request: Request) -> None:
        who = await run.io_bound(signed_in, appliance, request)
        if who is None:
            ui.navigate.to("/login" if await run.io_bound(has_users) else "/setup/admin")
            return
        report = await in_thread(appliance.readiness)
        add_to_header(NoticeBell(appliance, who.user_id, str(who.role)).draw)
        with frame(_("Status"), role=str(who.role)):
            heading(_("Enclave is unsealed"))
            ui.label(
                _("Signed in as {user} ({role})").format(
                    user=who.username, role=role_name(str(who.role))
                )
            ).props("id=signed-in-as")
            checks = report["checks"]
            rows = [
                {"check": _("Version"), "value": __version__},
                {"check": _("State"), "value": report["state"]},
                {"check": _("Database"), "value": _("ok") if checks["database"] else _("failing")},
                {
                    "check": _("Schema"),
                    "value": _("current") if checks["migrations"] else _("behind"),
                },
            ]
            ui.table(
                columns=[
                    {"name": "check", "label": _("Check"), "field": "check", "align": "left"},
                    {"name": "value", "label": _("Value"), "field": "value", "align": "left"},
                ],
                rows=rows,
            ).props("flat bordered").classes("w-full")

            next_steps(str(who.role))

            async def leave() -> None:
                await sign_out(who.csrf_token)
                ui.navigate.to("/login")

            ui.button(_("Sign out"), on_click=leave).props("id=sign-out flat")


# First-run steps after the administrator exists: (text, path, roles that see it).
NEXT_STEPS = (
    (N_("Import the license (or keep evaluating)"), "/setup/license", {"admin"}),
    (N_("Check the bundled model"), "/setup/model", {"admin"}),
    (N_("Create an agent from a template"), "/agents", {"admin", "builder"}),
    (N_("Chat with an agent"), "/chat", {"admin", "builder", "member"}),
    (N_("Add documents to a knowledge base"), "/knowledge", {"admin", "builder", "member"}),
)


def next_steps(role: str) -> None:
    """Links to what ``role`` does next (the rest of the first-run path for an admin)."""
    steps = [(text, path) for text, path, roles in NEXT_STEPS if role in roles]
    if not steps:
        ui.link(_("Audit log"), "/admin/audit")
        return
    ui.label(_("Next steps")).classes("text-h6").props("role=heading aria-level=2")
    with ui.column().classes("gap-1").props("id=next-steps"):
        for number, (text, path) in enumerate(steps, start=1):
            ui.link(_("{number}. {step}").format(number=number, step=_(text)), path)


__all__ = ["add_account_pages"]

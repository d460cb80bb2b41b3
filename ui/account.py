"""First administrator, sign-in, and the status page (which needs a signed-in user)."""

from __future__ import annotations

from fastapi import Request
from nicegui import run, ui

from appliance import Appliance, EnclaveError, Role, __version__
from ui.frame import error_line, frame, heading
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
        with frame("Administrator"):
            heading("Create the administrator")
            ui.label(
                "This account manages users, keys and settings. Its password needs at least 12 "
                "characters and must not contain the user name."
            )
            username = ui.input("User name", value="admin")
            password = ui.input("Password", password=True, password_toggle_button=True)
            repeat = ui.input("Repeat password", password=True)
            error = error_line()

            async def submit() -> None:
                error.text = ""
                if password.value != repeat.value:
                    error.text = "The two passwords differ."
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
                ui.navigate.to("/login" if problem else "/")

            ui.button("Create administrator", on_click=submit).props("id=admin-submit")

    @ui.page("/login")
    async def login_page() -> None:
        if not await run.io_bound(has_users):
            ui.navigate.to("/setup/admin")
            return
        with frame("Sign in"):
            heading("Sign in")
            username = ui.input("User name")
            password = ui.input("Password", password=True, password_toggle_button=True)
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
            ui.button("Sign in", on_click=submit).props("id=login-submit")

    @ui.page("/")
    async def status_page(request: Request) -> None:
        who = await run.io_bound(signed_in, appliance, request)
        if who is None:
            ui.navigate.to("/login" if await run.io_bound(has_users) else "/setup/admin")
            return
        report = await in_thread(appliance.readiness)
        with frame("Status", role=str(who.role)):
            heading("Enclave is unsealed")
            ui.label(f"Signed in as {who.username} ({who.role})").props("id=signed-in-as")
            checks = report["checks"]
            rows = [
                {"check": "Version", "value": __version__},
                {"check": "State", "value": report["state"]},
                {"check": "Database", "value": "ok" if checks["database"] else "failing"},
                {"check": "Schema", "value": "current" if checks["migrations"] else "behind"},
            ]
            ui.table(
                columns=[
                    {"name": "check", "label": "Check", "field": "check", "align": "left"},
                    {"name": "value", "label": "Value", "field": "value", "align": "left"},
                ],
                rows=rows,
            ).props("flat bordered").classes("w-full")

            next_steps(str(who.role))

            async def leave() -> None:
                await sign_out(who.csrf_token)
                ui.navigate.to("/login")

            ui.button("Sign out", on_click=leave).props("id=sign-out flat")


# First-run steps after the administrator exists: (text, path, roles that see it).
NEXT_STEPS = (
    ("Import the license (or keep evaluating)", "/admin/credits", {"admin"}),
    ("Check the bundled model", "/admin/models", {"admin"}),
    ("Create an agent from a template", "/agents", {"admin", "builder"}),
    ("Chat with an agent", "/chat", {"admin", "builder", "member"}),
    ("Add documents to a knowledge base", "/knowledge", {"admin", "builder", "member"}),
)


def next_steps(role: str) -> None:
    """Links to what ``role`` does next (the rest of the first-run path for an admin)."""
    steps = [(text, path) for text, path, roles in NEXT_STEPS if role in roles]
    if not steps:
        ui.link("Audit log", "/admin/audit")
        return
    ui.label("Next steps").classes("text-h6").props("role=heading aria-level=2")
    with ui.column().classes("gap-1").props("id=next-steps"):
        for number, (text, path) in enumerate(steps, start=1):
            ui.link(f"{number}. {text}", path)


__all__ = ["add_account_pages"]

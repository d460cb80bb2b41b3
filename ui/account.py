"""First administrator, sign-in, and the status page (which needs a signed-in user)."""

from __future__ import annotations

from fastapi import Request
from nicegui import run, ui

from appliance import Appliance, EnclaveError, Role, __version__
from ui.frame import error_line, frame, heading
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
        report = await run.io_bound(appliance.readiness)
        with frame("Status"):
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

            async def leave() -> None:
                await sign_out(who.csrf_token)
                ui.navigate.to("/login")

            ui.button("Sign out", on_click=leave).props("id=sign-out flat")


__all__ = ["add_account_pages"]

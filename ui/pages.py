"""The pages that work while sealed (first run, unseal) and the system status page."""

from __future__ import annotations

from nicegui import run, ui

from appliance import Appliance, EnclaveError, State, __version__


def _frame(title: str) -> ui.column:
    ui.page_title(f"{title} · Enclave")
    with ui.header().classes("items-center"):
        ui.label("Enclave").classes("text-h6")
    with ui.footer().classes("text-caption").props("role=contentinfo"):
        ui.label(f"Enclave {__version__}")
    column = ui.column().classes("mx-auto w-full max-w-md q-pa-lg gap-4")
    return column


def _error_label() -> ui.label:
    return ui.label("").classes("text-negative").props("role=alert aria-live=assertive")


def add_pages(appliance: Appliance) -> None:
    """Register the pages for ``appliance``."""

    @ui.page("/setup")
    def setup_page() -> None:
        if appliance.state is not State.UNINITIALISED:
            ui.navigate.to("/unseal" if appliance.state is State.SEALED else "/")
            return
        with _frame("First run"):
            ui.label("Set up Enclave").classes("text-h5").props("role=heading aria-level=1")
            ui.label(
                "Choose the admin passphrase. It encrypts every byte Enclave stores; without it "
                "the data cannot be read. Use at least 12 characters; a few unrelated words work well."
            )
            first = ui.input("Admin passphrase", password=True, password_toggle_button=True)
            second = ui.input("Repeat passphrase", password=True)
            error = _error_label()

            async def submit() -> None:
                error.text = ""
                if first.value != second.value:
                    error.text = "The two passphrases differ."
                    return
                try:
                    await run.io_bound(appliance.initialise, first.value)
                except EnclaveError as exc:
                    error.text = exc.message
                    return
                ui.navigate.to("/")

            ui.button("Create encrypted store", on_click=submit).props("id=setup-submit")
            second.on("keydown.enter", submit)

    @ui.page("/unseal")
    def unseal_page() -> None:
        if appliance.state is State.UNINITIALISED:
            ui.navigate.to("/setup")
            return
        if appliance.state is State.UNSEALED:
            ui.navigate.to("/")
            return
        with _frame("Unseal"):
            ui.label("Enclave is sealed").classes("text-h5").props("role=heading aria-level=1")
            ui.label("Enter the admin passphrase to unlock the encrypted store.")
            passphrase = ui.input("Admin passphrase", password=True, password_toggle_button=True)
            error = _error_label()

            async def submit() -> None:
                error.text = ""
                try:
                    await run.io_bound(appliance.unseal, passphrase.value or "")
                except EnclaveError as exc:
                    error.text = exc.message
                    passphrase.value = ""
                    return
                ui.navigate.to("/")

            passphrase.on("keydown.enter", submit)
            ui.button("Unseal", on_click=submit).props("id=unseal-submit")

    @ui.page("/")
    async def status_page() -> None:
        report = await run.io_bound(appliance.readiness)
        with _frame("Status"):
            ui.label("Enclave is unsealed").classes("text-h5").props("role=heading aria-level=1")
            rows = [
                {"check": "Version", "value": __version__},
                {"check": "State", "value": report["state"]},
                {"check": "Database", "value": "ok" if report["checks"]["database"] else "failing"},
                {
                    "check": "Schema",
                    "value": "current" if report["checks"]["migrations"] else "behind",
                },
            ]
            ui.table(
                columns=[
                    {"name": "check", "label": "Check", "field": "check", "align": "left"},
                    {"name": "value", "label": "Value", "field": "value", "align": "left"},
                ],
                rows=rows,
            ).props("flat bordered").classes("w-full")

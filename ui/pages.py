"""The pages that work while sealed: first run (set the passphrase) and unseal."""

from __future__ import annotations

from nicegui import run, ui

from appliance import Appliance, EnclaveError, State
from ui.frame import error_line, frame, heading
from ui.i18n import _


def add_lifecycle_pages(appliance: Appliance) -> None:
    """Register /setup and /unseal for ``appliance``."""

    @ui.page("/setup")
    def setup_page() -> None:
        if appliance.state is not State.UNINITIALISED:
            ui.navigate.to("/unseal" if appliance.state is State.SEALED else "/")
            return
        with frame(_("First run")):
            heading(_("Set up Enclave"))
            ui.label(
                _(
                    "Choose the admin passphrase. It encrypts every byte Enclave stores; without "
                    "it the data cannot be read. Use at least 12 characters; a few unrelated "
                    "words work well."
                )
            )
            first = ui.input(_("Admin passphrase"), password=True, password_toggle_button=True)
            second = ui.input(_("Repeat passphrase"), password=True)
            error = error_line()

            async def submit() -> None:
                error.text = ""
                if first.value != second.value:
                    error.text = _("The two passphrases differ.")
                    return
                try:
                    await run.io_bound(appliance.initialise, first.value, actor="setup-page")
                except EnclaveError as exc:
                    error.text = exc.message
                    return
                ui.navigate.to("/setup/admin")

            ui.button(_("Create encrypted store"), on_click=submit).props("id=setup-submit")
            second.on("keydown.enter", submit)

    @ui.page("/unseal")
    def unseal_page() -> None:
        if appliance.state is State.UNINITIALISED:
            ui.navigate.to("/setup")
            return
        if appliance.state is State.UNSEALED:
            ui.navigate.to("/")
            return
        with frame(_("Unseal")):
            heading(_("Enclave is sealed"))
            ui.label(_("Enter the admin passphrase to unlock the encrypted store."))
            passphrase = ui.input(_("Admin passphrase"), password=True, password_toggle_button=True)
            error = error_line()

            async def submit() -> None:
                error.text = ""
                try:
                    await run.io_bound(
                        appliance.unseal, passphrase.value or "", actor="unseal-page"
                    )
                except EnclaveError as exc:
                    error.text = exc.message
                    passphrase.value = ""
                    return
                ui.navigate.to("/")

            passphrase.on("keydown.enter", submit)
            ui.button(_("Unseal"), on_click=submit).props("id=unseal-submit")

"""The first-run wizard after the administrator exists: license → model check → first agent
from a template → chat with it.

/setup (passphrase, ui/pages.py) and /setup/admin (ui/account.py) come first; creating the
administrator signs them in and opens /setup/license. Every step is for administrators only and
can be opened again later (it then shows what is already done).
"""

from __future__ import annotations

from fastapi import Request
from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement
from nicegui.events import GenericEventArguments

from appliance import Appliance, EnclaveError
from appliance.agents.templates import template_document
from appliance.licensing.document import MAX_FILE_BYTES
from appliance.model_check import check_default_model
from ui.access import ADMIN_ROLES, Viewer, viewer
from ui.agent_templates import template_cards
from ui.frame import error_line, frame, heading, subheading
from ui.i18n import N_, _, aria_label
from ui.offload import in_thread

# The whole first run, in order: (title, path).
STEPS = (
    (N_("Passphrase"), "/setup"),
    (N_("Administrator"), "/setup/admin"),
    (N_("License"), "/setup/license"),
    (N_("Model"), "/setup/model"),
    (N_("First agent"), "/setup/agent"),
    (N_("Chat"), "/chat"),
)
STATE_TEXT = {
    "unlicensed": N_("No license is installed."),
    "valid": N_("A license is in force."),
    "expiring": N_("The license expires soon."),
    "grace": N_("The license has expired and is in its grace period."),
    "read_only": N_("No valid license: Enclave is read-only until one is imported."),
}
STEP_TEXT = {
    "file": N_("Model file"),
    "format": N_("File format"),
    "memory": N_("Memory"),
    "tokenizer": N_("Opens in llama.cpp"),
}


def progress(current: int) -> None:
    """'Step n of 6' and the list of steps, the current one marked for screen readers."""
    title = _(STEPS[current][0])
    ui.label(
        _("Step {n} of {total}: {title}").format(n=current + 1, total=len(STEPS), title=title)
    ).props("id=wizard-step")
    with (
        ui.element("ol")
        .classes("row gap-3 text-caption q-pl-none")
        .props(aria_label(_("First-run steps")) + " id=wizard-steps")
    ):
        for index, (name, _path) in enumerate(STEPS):
            item = ui.element("li").classes("list-none row no-wrap gap-1")
            with item:
                if index < current:
                    ui.label("✓").props("aria-hidden=true")
                label = ui.label(_(name))
                if index == current:
                    item.props('aria-current="step"')
                    label.classes("text-bold")


def add_wizard_pages(appliance: Appliance) -> None:
    """Register /setup/license, /setup/model and /setup/agent."""

    @ui.page("/setup/license")
    async def license_step(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("License"))
        if person is None:
            return
        licensing = appliance.services.metering.license
        status = await in_thread(licensing.status)
        offer = await in_thread(licensing.evaluation_offer)
        with frame(_("License"), role=person.role):
            progress(2)
            heading(_("License"))
            state = status.state.value
            ui.label(_(STATE_TEXT.get(state, state))).props("id=license-state")
            lic = status.license
            if lic is not None:
                ui.label(
                    _("{customer}, tier {tier}, {seats} seats, until {date}.").format(
                        customer=lic.customer,
                        tier=lic.tier,
                        seats=lic.seats,
                        date=lic.expires_at.date().isoformat(),
                    )
                ).props("id=license-summary")
            ui.label(
                _("Import the license file you received from the vendor, or start the evaluation.")
                if offer is not None
                else _("Import the license file you received from the vendor.")
            )
            error = error_line().props("id=license-error")

            async def imported(data: str) -> None:
                error.text = ""
                try:
                    await in_thread(
                        lambda: appliance.services.audited(
                            lambda: licensing.import_license(data),
                            action="license.import",
                            actor=f"user:{person.user.id}",
                            target=lambda made: f"license:{made.license_id}",
                            details=lambda made: {"tier": made.tier, "seats": made.seats},
                        )
                    )
                except EnclaveError as exc:
                    error.text = exc.message
                    return
                ui.navigate.to("/setup/model")

            async def chosen(event: GenericEventArguments) -> None:
                if event.args is None:
                    error.text = _("This file is too large to be a license.")
                    return
                await imported(str(event.args))

            # A plain file input with a visible label (keyboard and screen readers know it);
            # the browser reads the small text file and sends its content.
            TextElement(tag="label", text=_("License file")).classes("text-bold").props(
                "for=license-file"
            )
            picker = ui.element("input").props('type=file accept=".lic,.json,.txt" id=license-file')
            picker.on(
                "change",
                chosen,
                js_handler=(
                    "(e) => { const f = e.target.files[0]; if (!f) return;"
                    f" if (f.size > {MAX_FILE_BYTES}) {{ emit(null); e.target.value = ''; return; }}"
                    " f.text().then(t => { emit(t); e.target.value = ''; }); }"
                ),
            )
            if offer is not None:
                start_evaluation(appliance, person, offer.evaluation_days or 0, error)
            with ui.row().classes("gap-2"):
                if lic is not None and not status.read_only:
                    ui.button(_("Continue"), on_click=lambda: ui.navigate.to("/setup/model")).props(
                        "id=license-continue"
                    )
                elif not licensing.required:
                    ui.button(
                        _("Skip for now"), on_click=lambda: ui.navigate.to("/setup/model")
                    ).props("flat id=license-skip")

    @ui.page("/setup/model")
    async def model_step(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("Model check"))
        if person is None:
            return
        with frame(_("Model check"), role=person.role):
            progress(3)
            heading(_("Check the bundled model"))
            ui.label(
                _(
                    "Enclave answers with a language model that runs on this machine. This "
                    "checks that its file is present and that llama.cpp can open it."
                )
            )
            error = error_line().props("id=model-error")
            results = ui.column().classes("gap-1").props("id=model-check")
            with results:
                ui.spinner().props(aria_label(_("Checking the model")))
            continue_button = ui.button(
                _("Continue"), on_click=lambda: ui.navigate.to("/setup/agent")
            ).props("id=model-continue")
            continue_button.disable()

        async def run_check() -> None:
            try:
                check = await check_default_model(appliance.runs.hub)
            except EnclaveError as exc:
                results.clear()
                error.text = exc.message
                return
            results.clear()
            with results:
                ui.label(
                    _("{name}: {size} MiB, {context} tokens of context").format(
                        name=check.name, size=check.size_mib, context=check.context_length
                    )
                ).classes("text-bold")
                for step, passed, detail in check.steps:
                    colour = "text-green-10" if passed else "text-negative"
                    with ui.row().classes(f"model-check-step gap-x-2 {colour}"):
                        ui.label("✓" if passed else "✗").props("aria-hidden=true")
                        ui.label(_(STEP_TEXT.get(step, step))).classes("text-bold")
                        ui.label(detail).classes("i18n-data")
                        ui.label(_("passed") if passed else _("failed")).classes("sr-only")
            if check.ok:
                with results:
                    ui.label(_("The model is ready.")).props("id=model-ready")
                continue_button.enable()
            else:
                error.text = _(
                    "The bundled model cannot be used. Reinstall Enclave (`make run`) or import "
                    "a GGUF model under Admin → Models."
                )

        ui.timer(0.1, run_check, once=True)

    @ui.page("/setup/agent")
    async def agent_step(request: Request) -> None:
        person = await viewer(appliance, request, ADMIN_ROLES, _("First agent"))
        if person is None:
            return
        with frame(_("First agent"), role=person.role, wide=True):
            progress(4)
            heading(_("Create your first agent"))
            ui.label(
                _(
                    "An agent is instructions, a model and tools. Start from a template; you "
                    "can change everything later under Agents."
                )
            )
            error = error_line().props("id=template-error")

            async def create(template_id: str) -> None:
                error.text = ""
                try:
                    made = await in_thread(
                        appliance.services.agents.create,
                        person.user,
                        template_document(template_id),
                        "Created in the first-run wizard.",
                    )
                except EnclaveError as exc:
                    error.text = exc.message
                    return
                ui.navigate.to(f"/chat?agent={made.id}")

            with ui.row().classes("w-full gap-4").props("id=wizard-templates"):
                template_cards(create)
            ui.link(_("Skip: go to the start page"), "/").props("id=wizard-skip")


def start_evaluation(appliance: Appliance, person: Viewer, days: int, error: ui.label) -> None:
    """The button that starts the shipped evaluation license (once per home)."""
    subheading(_("Evaluate first"))
    ui.label(
        _(
            "No license file yet? Start a {days}-day evaluation. It can be started once on this "
            "installation; import the vendor's license file any time to replace it."
        ).format(days=days)
    )

    async def start() -> None:
        error.text = ""
        licensing = appliance.services.metering.license
        try:
            await in_thread(
                lambda: appliance.services.audited(
                    licensing.start_evaluation,
                    action="license.evaluation",
                    actor=f"user:{person.user.id}",
                    target=lambda made: f"license:{made.license_id}",
                    details=lambda made: {"days": made.evaluation_days},
                )
            )
        except EnclaveError as exc:
            error.text = exc.message
            return
        ui.navigate.to("/setup/model")

    ui.button(_("Start the {days}-day evaluation").format(days=days), on_click=start).props(
        "id=start-evaluation"
    )

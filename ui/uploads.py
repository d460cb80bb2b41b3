"""Accessible file uploads: Quasar's uploader draws its "add files" button and its file input
without an accessible name (axe: ``aria-command-name``, ``label``); this gives both the
uploader's label once the element is in the page."""

from __future__ import annotations

import json

from nicegui import ui


def name_uploader(uploader: ui.upload, label: str) -> ui.upload:
    """Give ``uploader``'s file input the accessible name ``label`` and make it the one control.

    Quasar draws the "add files" button as a focusable ``<a class="q-btn">`` with the file input
    (transparent, covering the button) inside it: two nested interactive controls (axe:
    ``nested-interactive``). The button keeps its look but leaves the tab order; the input, now
    named, is what keyboard and screen-reader users reach (Enter or Space opens the file dialog),
    and the button shows a focus ring while the input inside it has focus."""
    # The element's own DOM id, unless a page gave it one (``props("id=...")``).
    dom_id = str(uploader.props.get("id") or f"c{uploader.id}")
    script = (
        f"const root = document.getElementById({json.dumps(dom_id)});"
        "if (root) { root.querySelectorAll('input[type=file]').forEach(input => {"
        f"input.setAttribute('aria-label', {json.dumps(label)});"
        "const holder = input.closest('.q-btn');"
        "if (holder) { holder.removeAttribute('tabindex'); holder.removeAttribute('role');"
        "holder.removeAttribute('aria-label'); holder.classList.add('enclave-upload-button'); }"
        "}); }"
    )
    ui.add_css(
        ".enclave-upload-button:focus-within { outline: 2px solid currentColor; "
        "outline-offset: 2px; }"
    )
    ui.timer(0.05, lambda: ui.run_javascript(script), once=True)
    return uploader

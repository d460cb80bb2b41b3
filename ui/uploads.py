"""Accessible file uploads: Quasar's uploader draws its "add files" button and its file input
without an accessible name (axe: ``aria-command-name``, ``label``); this gives both the
uploader's label once the element is in the page."""

from __future__ import annotations

import json

from nicegui import ui


def name_uploader(uploader: ui.upload, label: str) -> ui.upload:
    """Give ``uploader``'s add button and file input the accessible name ``label``."""
    # The element's own DOM id, unless a page gave it one (``props("id=...")``).
    dom_id = str(uploader.props.get("id") or f"c{uploader.id}")
    script = (
        f"const root = document.getElementById({json.dumps(dom_id)});"
        "if (root) { root.querySelectorAll('.q-uploader__header .q-btn, input[type=file]')"
        f".forEach(e => e.setAttribute('aria-label', {json.dumps(label)})); }}"
    )
    ui.timer(0.05, lambda: ui.run_javascript(script), once=True)
    return uploader

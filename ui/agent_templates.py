"""The starter templates' names and summaries as the UI shows them, marked for translation.

The templates live in the appliance layer (English, as stored in new agents); this module only
marks their card texts for extraction. tests/ui/test_i18n.py fails when a template's name or
summary is missing here.
"""

from __future__ import annotations

from ui.i18n import N_

CARD_TEXTS = (
    N_("Document Q&A"),
    N_("Answers questions from the knowledge bases you attach, citing its sources."),
    N_("Data analyst"),
    N_("Analyses uploaded tables by writing and running Python in the sandbox."),
    N_("Summariser"),
    N_("Turns long text into a short, faithful summary."),
    N_("Translator"),
    N_("Translates text between languages, keeping the formatting."),
    N_("IT helpdesk"),
    N_("First-line IT support that walks users through common fixes."),
)

__all__ = ["CARD_TEXTS"]

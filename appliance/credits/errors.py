"""Typed errors of the credit meter (the hook turns the two 402s into engine denials)."""

from __future__ import annotations

from appliance.errors import EnclaveError, StorageError


class CreditsExhausted(EnclaveError):
    code = "credits_exhausted"
    http_status = 402
    title = "Not enough credits"
    default_message = (
        "There are not enough credits for this request. Ask an administrator to redeem a "
        "top-up voucher, or lower max_tokens."
    )


class BudgetExceeded(EnclaveError):
    code = "budget_exceeded"
    http_status = 402
    title = "Budget reached"
    default_message = (
        "This request would exceed a spending budget. Wait for the next period or ask an "
        "administrator to raise the budget."
    )


class LedgerBroken(StorageError):
    code = "credit_ledger_broken"
    http_status = 500
    title = "Credit ledger broken"
    default_message = (
        "The credit ledger failed verification: an entry was altered, removed or reordered."
    )


class PriceBelowLicense(EnclaveError):
    code = "price_below_license"
    http_status = 422
    title = "Price below the license's minimum"
    default_message = "The license sets a higher minimum for this price."

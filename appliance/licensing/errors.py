"""Typed errors of licensing: a refused license or voucher file, and the limits a license sets."""

from __future__ import annotations

from appliance.errors import EnclaveError


class LicenseInvalid(EnclaveError):
    code = "license_invalid"
    http_status = 422
    title = "License or voucher rejected"
    default_message = (
        "The file is not a valid Enclave license or voucher (damaged, altered or not signed by "
        "the vendor). Ask the vendor for a new file; nothing was changed."
    )


class LicenseFileTooLarge(LicenseInvalid):
    """A license or voucher file over the size limit (refused before it is read further)."""

    code = "license_too_large"
    http_status = 413
    title = "License or voucher file too large"
    default_message = (
        "The file is far larger than any license or voucher (64 KiB at most); check that it is "
        "the file the vendor sent. Nothing was changed."
    )


class LicenseExpired(EnclaveError):
    code = "license_expired"
    http_status = 422
    title = "License expired"
    default_message = "This license (or voucher) has expired; ask the vendor for a current one."


class LicenseNotYetValid(EnclaveError):
    code = "license_not_yet_valid"
    http_status = 422
    title = "License not yet valid"
    default_message = "This license is not valid yet; import it on or after its start date."


class LicenseWrongMachine(EnclaveError):
    code = "license_wrong_machine"
    http_status = 422
    title = "License for another machine"
    default_message = (
        "This license is bound to another installation; send the vendor this appliance's "
        "machine id (`enclave license show`)."
    )


class VoucherWrongLicense(EnclaveError):
    code = "voucher_wrong_license"
    http_status = 422
    title = "Voucher for another license"
    default_message = "This voucher was issued for another license; nothing was credited."


class VoucherAlreadyRedeemed(EnclaveError):
    code = "voucher_already_redeemed"
    http_status = 409
    title = "Voucher already redeemed"
    default_message = "This voucher has already been redeemed; a voucher is single-use."


class NoLicense(EnclaveError):
    code = "no_license"
    http_status = 404
    title = "No license"
    default_message = "No license has been imported; import one with `enclave license import`."


class SeatsExceeded(EnclaveError):
    code = "seats_exceeded"
    http_status = 402
    title = "No free seat"
    default_message = (
        "Every licensed seat is taken: disable a user or import a license with more seats."
    )


class LicenseReadOnly(EnclaveError):
    code = "license_read_only"
    http_status = 403
    title = "License expired: read-only"
    default_message = (
        "The license has expired and its grace period is over: Enclave is read-only (no new "
        "runs; everything can still be read and exported). Import a new license to continue."
    )


class EvaluationUnavailable(EnclaveError):
    code = "evaluation_unavailable"
    http_status = 409
    title = "Evaluation not available"
    default_message = (
        "The evaluation license can be started once, on a home that has never had a license; "
        "import the license file from the vendor instead."
    )


class FeatureNotLicensed(EnclaveError):
    code = "feature_not_licensed"
    http_status = 403
    title = "Not in this license"
    default_message = (
        "The license in force does not include this feature: what exists stays readable and "
        "exportable, but nothing can be added or changed. Import a license that includes it."
    )

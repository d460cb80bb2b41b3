"""The vendor's tool (``enclave-vendor``): make the signing key, issue licenses and top-up
vouchers, list what was issued. It runs at the vendor, never on a customer appliance, and the
appliance never imports it: the appliance only holds the public key."""

from enclave_vendor.errors import VendorError
from enclave_vendor.issuing import Issuer, generate_keypair

__all__ = ["Issuer", "VendorError", "generate_keypair"]

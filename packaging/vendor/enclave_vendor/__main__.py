"""``python -m enclave_vendor`` runs the vendor tool."""

from enclave_vendor.cli import main

main()

"""``python -m appliance`` is the ``enclave`` command."""

from appliance.cli import main

main()

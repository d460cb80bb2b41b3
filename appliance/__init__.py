"""Enclave appliance: settings, encrypted store, key lifecycle, HTTP API, CLI.

What the layer above (``ui``) may use is re-exported here.
"""

from appliance.errors import EnclaveError
from appliance.identity.models import Role
from appliance.lifecycle import Appliance, State
from appliance.settings import EnclaveSettings
from appliance.version import __version__

__all__ = ["Appliance", "EnclaveError", "EnclaveSettings", "Role", "State", "__version__"]

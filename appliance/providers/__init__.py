"""Remote model endpoints: their configuration (API keys encrypted), probes and live providers."""

from appliance.providers.models import ProviderEndpoint
from appliance.providers.secrets import rewrap
from appliance.providers.service import EndpointInfo, EndpointSpec, ProviderService

__all__ = ["EndpointInfo", "EndpointSpec", "ProviderEndpoint", "ProviderService", "rewrap"]

"""HTTP layer: the FastAPI application the UI mounts onto, its middleware and system routes."""

from appliance.web.app import create_app

__all__ = ["create_app"]

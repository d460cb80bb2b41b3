"""The composition root: one FastAPI app with the API, the seal gate, and the UI plugins.

The UI layer sits above the appliance, so the appliance never imports it: UI packages register
through the ``enclave.ui`` entry-point group (the way ``llm`` loads plugins) and get the app and
the appliance to mount their pages on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points

import structlog
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from appliance.errors import EnclaveError
from appliance.lifecycle import Appliance, State
from appliance.version import __version__
from appliance.web import routes_admin as admin_routes
from appliance.web import routes_agents as agent_routes
from appliance.web import routes_auth as auth_routes
from appliance.web import routes_conversations as conversation_routes
from appliance.web import routes_credits as credit_routes
from appliance.web import routes_keys as key_routes
from appliance.web import routes_knowledge as knowledge_routes
from appliance.web import routes_license as license_routes
from appliance.web import routes_mcp as mcp_routes
from appliance.web import routes_providers as provider_routes
from appliance.web import routes_runs as run_routes
from appliance.web.middleware import RequestIdMiddleware, SealGateMiddleware
from appliance.web.problems import install_problem_handlers
from appliance.web.ratelimit import RateLimitMiddleware
from appliance.web.security import SecurityHeadersMiddleware, mount_api_docs
from appliance.web.system import router as system_router

log = structlog.get_logger(__name__)
UI_ENTRY_POINT_GROUP = "enclave.ui"


def load_ui_plugins(app: FastAPI, appliance: Appliance) -> list[str]:
    """Call every registered UI plugin's ``register(app, appliance)``; returns their names."""
    names = []
    for ep in entry_points(group=UI_ENTRY_POINT_GROUP):
        ep.load()(app, appliance)
        names.append(ep.name)
    return names


def create_app(appliance: Appliance, with_ui: bool = True) -> FastAPI:
    """Build the ASGI app for ``appliance``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            if await run_in_threadpool(appliance.unseal_from_settings):
                log.info("server.auto_unsealed")
        except EnclaveError as exc:
            # Stay up, sealed, and say why: an operator can still unseal by passphrase.
            log.error("server.auto_unseal_failed", code=exc.code, reason=exc.message)
        if appliance.state is State.UNSEALED:  # unsealed before the app (serve --passphrase-file)
            await run_in_threadpool(appliance.resume_background_jobs)
        yield
        appliance.seal()

    app = FastAPI(
        title="Enclave",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.appliance = appliance
    appliance.resume_jobs_at_unseal = True  # interrupted ingestion resumes at every unseal
    install_problem_handlers(app)
    app.include_router(system_router)
    for router in (
        auth_routes.router,
        admin_routes.users,
        admin_routes.groups,
        key_routes.keys,
        key_routes.audit,
        license_routes.router,
        credit_routes.credits,
        credit_routes.notifications,
        agent_routes.router,
        agent_routes.templates,
        conversation_routes.router,
        provider_routes.router,
        run_routes.router,
        mcp_routes.servers,
        mcp_routes.tools,
        *knowledge_routes.routers,
    ):
        app.include_router(router)
    mount_api_docs(app)
    app.add_middleware(SealGateMiddleware, appliance_getter=lambda: appliance)
    app.add_middleware(
        RateLimitMiddleware,
        api_per_minute=appliance.settings.rate_limit_api_per_minute,
        auth_per_minute=appliance.settings.rate_limit_auth_per_minute,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if with_ui:
        loaded = load_ui_plugins(app, appliance)
        log.info("server.ui_loaded", plugins=loaded)
    return app

"""/api/v1/auth: sign in, refresh, sign out, who am I, change my password, first admin."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from appliance.errors import Conflict, InvalidCredentials, InvalidToken
from appliance.identity.models import Role
from appliance.identity.tokens import TokenPair
from appliance.web.auth import AnyUser, ServicesDep, client_ip
from appliance.web.schemas import (
    LoginBody,
    MeOut,
    PasswordChangeBody,
    RefreshBody,
    TokenOut,
    UserCreateBody,
    UserOut,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _tokens(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/login")
async def login(body: LoginBody, request: Request, services: ServicesDep) -> TokenOut:
    """Exchange a username and password for an access token and a refresh token."""
    ip = client_ip(request)
    try:
        user = await run_in_threadpool(
            services.users.authenticate, body.username, body.password, ip
        )
    except InvalidCredentials:
        # The username is recorded as typed (bounded) so brute force shows up in the log.
        await run_in_threadpool(
            services.audit.record,
            action="login",
            outcome="failure",
            source_ip=ip,
            target=body.username[:64],
            request_id=request.headers.get("x-request-id"),
        )
        raise
    pair = await run_in_threadpool(
        services.tokens.login, user, "api", ip, request.headers.get("user-agent")
    )
    await run_in_threadpool(
        services.audit.record,
        action="login",
        actor=f"user:{user.id}",
        source_ip=ip,
        details={"session": pair.session_id},
    )
    return _tokens(pair)


@router.post("/refresh")
async def refresh(body: RefreshBody, request: Request, services: ServicesDep) -> TokenOut:
    """Rotate a refresh token; presenting a used one ends its whole session."""
    try:
        pair = await run_in_threadpool(services.tokens.refresh, body.refresh_token)
    except InvalidToken as exc:
        if exc.context.get("reason") == "refresh_reuse":
            await run_in_threadpool(
                services.audit.record,
                action="token.reuse",
                outcome="denied",
                actor=f"user:{exc.context.get('_user_id')}",
                source_ip=client_ip(request),
            )
        raise
    return _tokens(pair)


@router.post("/logout", status_code=204)
async def logout(principal: AnyUser, services: ServicesDep) -> Response:
    """End the caller's session (JWT); its access and refresh tokens stop working at once."""
    if principal.session_id is not None:
        await run_in_threadpool(services.tokens.logout, principal.session_id)
        await run_in_threadpool(services.audit.record, action="logout", actor=principal.actor)
    return Response(status_code=204)


@router.get("/me")
async def me(principal: AnyUser) -> MeOut:
    """The caller: user, role, how they authenticated, and (API keys) the key's scopes."""
    base = UserOut.of(principal.user).model_dump()
    scopes = sorted(principal.scopes) if principal.via == "api_key" else None
    return MeOut(**base, via=principal.via, scopes=scopes)


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChangeBody, principal: AnyUser, services: ServicesDep
) -> Response:
    """Change one's own password; every session of the user is ended (sign in again)."""
    await run_in_threadpool(
        services.users.change_password, principal.user.id, body.new_password, body.current_password
    )
    await run_in_threadpool(services.tokens.revoke_user_sessions, principal.user.id, "password")
    await run_in_threadpool(services.audit.record, action="password.change", actor=principal.actor)
    return Response(status_code=204)


@router.post("/first-admin", status_code=201)
async def first_admin(body: UserCreateBody, request: Request, services: ServicesDep) -> UserOut:
    """First run only: create the first administrator (refused once any user exists)."""

    def create() -> UserOut:
        if services.users.list_users():
            raise Conflict("Users already exist; an administrator creates further accounts.")
        user = services.users.create_user(
            body.username, body.password, Role.ADMIN, body.display_name, only_if_first=True
        )
        services.audit.record(
            action="user.create",
            actor="first-run",
            target=f"user:{user.id}",
            source_ip=client_ip(request),
            details={"role": "admin"},
        )
        return UserOut.of(user)

    return await run_in_threadpool(create)

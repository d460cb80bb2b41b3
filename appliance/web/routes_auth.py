"""/api/v1/auth: sign in, refresh, sign out, who am I, change my password, first admin."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from appliance.errors import Conflict, InvalidCredentials, InvalidToken
from appliance.identity.models import Role, User
from appliance.identity.tokens import TokenPair
from appliance.web.auth import SESSION_COOKIE, AnyUser, ServicesDep, client_ip
from appliance.web.schemas import (
    LoginBody,
    MeOut,
    PasswordChangeBody,
    RefreshBody,
    SessionOut,
    TokenOut,
    UserCreateBody,
    UserOut,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _tokens(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


async def _authenticate_or_audit(body: LoginBody, request: Request, services: ServicesDep) -> User:
    ip = client_ip(request)
    try:
        return await run_in_threadpool(
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


@router.post("/login")
async def login(body: LoginBody, request: Request, services: ServicesDep) -> TokenOut:
    """Exchange a username and password for an access token and a refresh token."""
    user = await _authenticate_or_audit(body, request, services)
    ip = client_ip(request)
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


@router.post("/session")
async def open_session(
    body: LoginBody, request: Request, response: Response, services: ServicesDep
) -> SessionOut:
    """Browser sign-in: sets the HttpOnly, SameSite=Strict session cookie (Secure over TLS) and
    returns the CSRF token that state-changing requests must echo in ``X-CSRF-Token``."""
    user = await _authenticate_or_audit(body, request, services)
    cookie, csrf = await run_in_threadpool(
        services.tokens.open_browser_session,
        user,
        client_ip(request),
        request.headers.get("user-agent"),
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=int(services.tokens.policy.absolute_timeout.total_seconds()),
    )
    await run_in_threadpool(
        services.audit.record,
        action="login",
        actor=f"user:{user.id}",
        source_ip=client_ip(request),
        details={"session": cookie.partition(".")[0], "kind": "ui"},
    )
    return SessionOut(csrf_token=csrf, user=UserOut.of(user))


@router.delete("/session", status_code=204)
async def close_session(principal: AnyUser, services: ServicesDep) -> Response:
    """Browser sign-out: ends the session and clears the cookie."""
    if principal.session_id is not None:
        await run_in_threadpool(services.tokens.logout, principal.session_id)
        await run_in_threadpool(services.audit.record, action="logout", actor=principal.actor)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


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

    def change() -> None:
        services.users.change_password(principal.user.id, body.new_password, body.current_password)
        services.tokens.revoke_user_sessions(principal.user.id, "password")

    await run_in_threadpool(
        services.audited, change, action="password.change", actor=principal.actor
    )
    return Response(status_code=204)


@router.post("/first-admin", status_code=201)
async def first_admin(body: UserCreateBody, request: Request, services: ServicesDep) -> UserOut:
    """First run only: create the first administrator (refused once any user exists)."""

    def create() -> UserOut:
        # Cheap early refusal; the binding check is inside the write (only_if_first).
        if services.users.has_users():
            raise Conflict("Users already exist; an administrator creates further accounts.")
        user = services.audited(
            lambda: services.users.create_user(
                body.username, body.password, Role.ADMIN, body.display_name, only_if_first=True
            ),
            action="user.create",
            actor="first-run",
            target=lambda u: f"user:{u.id}",
            source_ip=client_ip(request),
            details={"role": "admin"},
        )
        return UserOut.of(user)

    return await run_in_threadpool(create)

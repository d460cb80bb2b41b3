"""/api/v1/users and /api/v1/groups: administration of accounts (admins only).

Every change and its audit entry commit in one transaction (``Services.audited``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool as call

from appliance.identity.models import User
from appliance.web.auth import Admin, ServicesDep
from appliance.web.schemas import (
    GroupBody,
    GroupOut,
    PasswordResetBody,
    UserCreateBody,
    UserOut,
    UserPatchBody,
)

users = APIRouter(prefix="/api/v1/users", tags=["users"])
groups = APIRouter(prefix="/api/v1/groups", tags=["groups"])


@users.get("")
async def list_users(_: Admin, services: ServicesDep) -> list[UserOut]:
    """Every account."""
    return [UserOut.of(u) for u in await call(services.users.list_users)]


@users.post("", status_code=201)
async def create_user(body: UserCreateBody, admin: Admin, services: ServicesDep) -> UserOut:
    """Create an account (password policy applies)."""
    user = await call(
        services.audited,
        lambda: services.users.create_user(
            body.username, body.password, body.role, body.display_name
        ),
        action="user.create",
        actor=admin.actor,
        target=lambda u: f"user:{u.id}",
        details=lambda u: {"role": u.role},
    )
    return UserOut.of(user)


@users.get("/{user_id}")
async def get_user(user_id: int, _: Admin, services: ServicesDep) -> UserOut:
    """One account."""
    return UserOut.of(await call(services.users.get_user, user_id))


@users.patch("/{user_id}")
async def update_user(
    user_id: int, body: UserPatchBody, admin: Admin, services: ServicesDep
) -> UserOut:
    """Change role, disable/enable, or display name. Disabling ends the user's sessions."""

    def change() -> tuple[User, dict[str, object]]:
        user = services.users.get_user(user_id)
        changes: dict[str, object] = {}
        if body.role is not None and body.role != user.role:
            user = services.users.set_role(user_id, body.role)
            changes["role"] = user.role
        if body.display_name is not None:
            user = services.users.set_display_name(user_id, body.display_name)
            changes["display_name"] = True
        if body.disabled is not None and body.disabled != user.disabled:
            user = services.users.set_disabled(user_id, body.disabled)
            changes["disabled"] = user.disabled
            if user.disabled:
                services.tokens.revoke_user_sessions(user_id, "disabled")
        return user, changes

    user, _changes = await call(
        services.audited,
        change,
        action="user.update",
        actor=admin.actor,
        target=f"user:{user_id}",
        details=lambda result: result[1],
    )
    return UserOut.of(user)


@users.delete("/{user_id}", status_code=204)
async def delete_user(user_id: int, admin: Admin, services: ServicesDep) -> Response:
    """Delete an account, its sessions, group memberships and API keys."""
    await call(
        services.audited,
        lambda: services.users.delete_user(user_id),
        action="user.delete",
        actor=admin.actor,
        target=f"user:{user_id}",
    )
    return Response(status_code=204)


@users.post("/{user_id}/password", status_code=204)
async def reset_password(
    user_id: int, body: PasswordResetBody, admin: Admin, services: ServicesDep
) -> Response:
    """Set a user's password (and clear a lockout); their sessions end."""

    def reset() -> None:
        services.users.change_password(user_id, body.new_password)
        services.tokens.revoke_user_sessions(user_id, "password_reset")

    await call(
        services.audited,
        reset,
        action="password.reset",
        actor=admin.actor,
        target=f"user:{user_id}",
    )
    return Response(status_code=204)


@users.post("/{user_id}/sessions/revoke", status_code=204)
async def revoke_sessions(user_id: int, admin: Admin, services: ServicesDep) -> Response:
    """End every session of a user at once."""

    def revoke() -> int:
        services.users.get_user(user_id)
        return services.tokens.revoke_user_sessions(user_id, "admin")

    await call(
        services.audited,
        revoke,
        action="session.revoke",
        actor=admin.actor,
        target=f"user:{user_id}",
        details=lambda count: {"sessions": count},
    )
    return Response(status_code=204)


@groups.get("")
async def list_groups(_: Admin, services: ServicesDep) -> list[GroupOut]:
    """Every group."""
    return [GroupOut.of(g) for g in await call(services.groups.list_groups)]


@groups.post("", status_code=201)
async def create_group(body: GroupBody, admin: Admin, services: ServicesDep) -> GroupOut:
    """Create a group."""
    group = await call(
        services.audited,
        lambda: services.groups.create_group(body.name),
        action="group.create",
        actor=admin.actor,
        target=lambda g: f"group:{g.id}",
    )
    return GroupOut.of(group)


@groups.delete("/{group_id}", status_code=204)
async def delete_group(group_id: int, admin: Admin, services: ServicesDep) -> Response:
    """Delete a group (its memberships go with it)."""
    await call(
        services.audited,
        lambda: services.groups.delete_group(group_id),
        action="group.delete",
        actor=admin.actor,
        target=f"group:{group_id}",
    )
    return Response(status_code=204)


@groups.get("/{group_id}/members")
async def list_members(group_id: int, _: Admin, services: ServicesDep) -> list[UserOut]:
    """The members of a group."""
    return [UserOut.of(u) for u in await call(services.groups.list_members, group_id)]


@groups.put("/{group_id}/members/{user_id}", status_code=204)
async def add_member(group_id: int, user_id: int, admin: Admin, services: ServicesDep) -> Response:
    """Add a user to a group (idempotent)."""
    await call(
        services.audited,
        lambda: services.groups.add_member(group_id, user_id),
        action="group.member.add",
        actor=admin.actor,
        target=f"group:{group_id}",
        details={"user": user_id},
    )
    return Response(status_code=204)


@groups.delete("/{group_id}/members/{user_id}", status_code=204)
async def remove_member(
    group_id: int, user_id: int, admin: Admin, services: ServicesDep
) -> Response:
    """Remove a user from a group (idempotent)."""
    await call(
        services.audited,
        lambda: services.groups.remove_member(group_id, user_id),
        action="group.member.remove",
        actor=admin.actor,
        target=f"group:{group_id}",
        details={"user": user_id},
    )
    return Response(status_code=204)

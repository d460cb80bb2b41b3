"""Request and response bodies of the identity API (separate from the table models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from appliance.identity.models import ApiKey, Group, Role, User


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class PasswordChangeBody(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class PasswordResetBody(BaseModel):
    new_password: str = Field(min_length=1, max_length=1024)


class UserCreateBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = Role.MEMBER
    display_name: str | None = Field(None, max_length=200)


class UserPatchBody(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    display_name: str | None = Field(None, max_length=200)


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    role: str
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class SessionOut(BaseModel):
    csrf_token: str
    user: UserOut


class MeOut(UserOut):
    via: str
    scopes: list[str] | None


class GroupBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class GroupOut(BaseModel):
    id: int
    name: str

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        return cls(id=group.id, name=group.name)


class ApiKeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=10)
    expires_at: datetime | None = None


class ApiKeyOut(BaseModel):
    id: str
    user_id: int
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            user_id=key.user_id,
            name=key.name,
            scopes=key.scope_list,
            created_at=key.created_at,
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="Shown once; only a keyed hash is stored.")


class AuditEntryOut(BaseModel):
    entries: list[dict[str, Any]]

"""Request and response shapes. Shape only: domain rules stay in the value objects
(so a bad email is 400, not 422); max lengths bound the work done on input."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.dtos import UserDTO, UserPage

# Far above every domain limit, so a value over a domain limit still gets the
# domain's clear 400; this only bounds the work done on absurd input.
_MAX = 4096
_NAME = _EMAIL = _PASSWORD = _MAX


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Ann", "email": "ann@example.com", "password": "correct-horse-battery"}
            ]
        }
    )

    name: str = Field(max_length=_NAME)
    email: str = Field(max_length=_EMAIL)
    password: str = Field(max_length=_PASSWORD)


class ProfileUpdateRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Ann Lee", "email": "ann.lee@example.com"}]}
    )

    name: str | None = Field(default=None, max_length=_NAME)
    email: str | None = Field(default=None, max_length=_EMAIL)


class AdminUpdateRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "admin", "is_active": True}]}
    )

    name: str | None = Field(default=None, max_length=_NAME)
    email: str | None = Field(default=None, max_length=_EMAIL)
    role: Literal["user", "admin"] | None = None
    is_active: bool | None = Field(default=None, strict=True)


class PasswordChangeRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "correct-horse-battery",
                    "new_password": "staple-horse-battery",
                }
            ]
        }
    )

    current_password: str = Field(max_length=_PASSWORD)
    new_password: str = Field(max_length=_PASSWORD)


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    role: Literal["user", "admin"]
    is_active: bool
    email_verified: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_dto(cls, dto: UserDTO) -> "UserResponse":
        return cls.model_validate(dto)


class UserPageResponse(BaseModel):
    items: list[UserResponse]
    next_cursor: str | None

    @classmethod
    def from_page(cls, page: UserPage) -> "UserPageResponse":
        return cls(
            items=[UserResponse.from_dto(u) for u in page.items], next_cursor=page.next_cursor
        )

from pydantic import BaseModel, ConfigDict, Field

# Far above a real token (43 characters) or address; bounds the work on absurd input.
_MAX = 4096


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ann@example.com"}]})

    email: str = Field(max_length=_MAX)


class ResetRequest(_Request):
    token: str = Field(min_length=1, max_length=_MAX, description="From the reset link's #token=")
    new_password: str = Field(max_length=_MAX)


class VerifyRequest(_Request):
    token: str = Field(min_length=1, max_length=_MAX, description="From the link's #token=")


class Accepted(BaseModel):
    detail: str

from fastapi import APIRouter, status

from app.core.entities import TokenPurpose
from app.infra.api.dependencies import (
    ClientAddress,
    RequestAccountMailCase,
    ResetPasswordCase,
    VerifyEmailCase,
)
from app.infra.api.schemas.errors import HASHING_503, error_responses
from app.infra.api.schemas.recovery import Accepted, EmailRequest, ResetRequest, VerifyRequest

router = APIRouter(prefix="/auth", tags=["recovery"])

RESET_SENT = "If an account exists for this email, a reset link has been sent"
VERIFICATION_SENT = "If an account exists for this email, a verification link has been sent"
_LIMITED = (
    "More than RECOVERY_REQUESTS_PER_HOUR recovery requests from this client; "
    "retry after `Retry-After` seconds"
)
_BAD_RESET = "Invalid or expired token, a password rule, or a body that cannot be parsed"


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 413, 422, 429, 503, d400="Malformed email", d429=_LIMITED),
    summary="Mail a password reset link (the same answer for any address)",
)
async def forgot_password(
    body: EmailRequest, client: ClientAddress, usecase: RequestAccountMailCase
) -> Accepted:
    await usecase.execute(TokenPurpose.PASSWORD_RESET, body.email, client)
    return Accepted(detail=RESET_SENT)


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        400, 413, 422, 429, 503, d400=_BAD_RESET, d429=_LIMITED, d503=HASHING_503
    ),
    summary="Set a new password with a reset link's token; every session ends",
)
async def reset_password(
    body: ResetRequest, client: ClientAddress, usecase: ResetPasswordCase
) -> None:
    await usecase.execute(body.token, body.new_password, client)


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 413, 422, 429, 503, d400="Malformed email", d429=_LIMITED),
    summary="Mail a new verification link (the same answer for any address)",
)
async def request_verification(
    body: EmailRequest, client: ClientAddress, usecase: RequestAccountMailCase
) -> Accepted:
    await usecase.execute(TokenPurpose.EMAIL_VERIFICATION, body.email, client)
    return Accepted(detail=VERIFICATION_SENT)


@router.post(
    "/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        400, 413, 422, 429, 503, d400="Invalid or expired token", d429=_LIMITED
    ),
    summary="Confirm the email address with a verification link's token",
)
async def verify_email(
    body: VerifyRequest, client: ClientAddress, usecase: VerifyEmailCase
) -> None:
    await usecase.execute(body.token, client)

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from app.core.dtos import TokenClaims
from app.core.entities import User
from app.core.exceptions import InvalidToken
from app.core.value_objects import ID
from app.infra.auth.jwt_token_issuer import MAX_TOKEN_LENGTH, JwtTokenIssuer
from tests.unit.fakes import FakeClock, a_user

SECRET = "unit-test-secret-that-is-long-enough-0123456789"
TTL_MINUTES = 30
ISSUER, AUDIENCE = "https://issuer.test", "user-service"
MISSING = object()
SESSION_ID = ID.new()


def _now() -> datetime:
    # jose checks `exp` against the real time, so each test fixes its clock near it.
    return datetime.now(UTC).replace(microsecond=0)


def _issuer(
    algorithm: str = "HS256",
    clock: FakeClock | None = None,
    secret: str = SECRET,
    issuer: str | None = None,
    audience: str | None = None,
) -> JwtTokenIssuer:
    return JwtTokenIssuer(
        secret, algorithm, TTL_MINUTES, clock or FakeClock(_now()), issuer=issuer, audience=audience
    )


def _claims(user: User, **overrides: object) -> dict[str, Any]:
    """Claims as we issue them, with some replaced or (given MISSING) removed."""
    now = int(_now().timestamp())
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "iat": now,
        "exp": now + TTL_MINUTES * 60,
        "jti": "0" * 32,
        "type": "access",
        "ver": user.token_version,
        "sid": str(SESSION_ID),
    }
    for name, value in overrides.items():
        if value is MISSING:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segment(value: object) -> str:
    return _b64(json.dumps(value).encode())


def _hand_made(header: object, payload: object, key: str | None = SECRET) -> str:
    """A compact JWS built by hand; signed with HMAC-SHA256 unless `key` is None."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _refused(token: str, issuer: JwtTokenIssuer | None = None) -> None:
    with pytest.raises(InvalidToken):
        (issuer or _issuer()).read(token)


# Issue and read


def test_issued_token_reads_back_as_its_claims() -> None:
    user, session_id = a_user(token_version=7), ID.new()
    issuer = _issuer()
    claims = issuer.read(issuer.issue(user, session_id).token)
    assert claims == TokenClaims(subject=user.id, token_version=7, session_id=session_id)


def test_issued_token_carries_the_documented_claims() -> None:
    user, clock = a_user(token_version=3), FakeClock(_now())
    access = _issuer(clock=clock).issue(user, SESSION_ID)
    claims = jwt.get_unverified_claims(access.token)
    assert set(claims) == {"sub", "iat", "exp", "jti", "type", "ver", "sid"}
    assert claims["sub"] == str(user.id)
    assert claims["sid"] == str(SESSION_ID)
    assert claims["iat"] == int(clock.now().timestamp())
    assert claims["exp"] - claims["iat"] == access.expires_in == TTL_MINUTES * 60
    assert claims["type"] == "access"
    assert claims["ver"] == 3
    assert jwt.get_unverified_header(access.token)["alg"] == "HS256"
    assert access.token_type == "bearer"


def test_expires_in_follows_the_configured_minutes() -> None:
    issuer = JwtTokenIssuer(SECRET, "HS256", 15, FakeClock(_now()))
    access = issuer.issue(a_user(), SESSION_ID)
    claims = jwt.get_unverified_claims(access.token)
    assert access.expires_in == 900
    assert isinstance(access.expires_in, int)
    assert claims["exp"] - claims["iat"] == 900


def test_every_token_has_its_own_jti() -> None:
    issuer, user = _issuer(), a_user()
    jtis = {
        jwt.get_unverified_claims(issuer.issue(user, SESSION_ID).token)["jti"] for _ in range(20)
    }
    assert len(jtis) == 20


def test_access_token_repr_hides_the_token() -> None:
    access = _issuer().issue(a_user(), SESSION_ID)
    assert access.token not in repr(access)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_allowed_algorithms_round_trip(algorithm: str) -> None:
    issuer, user = _issuer(algorithm), a_user()
    token = issuer.issue(user, SESSION_ID).token
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert issuer.read(token).subject == user.id


def test_token_made_by_hand_like_ours_is_accepted() -> None:
    user = a_user()
    token = _hand_made({"alg": "HS256", "typ": "JWT"}, _claims(user))
    assert _issuer().read(token).subject == user.id


# Expiry and signatures


def test_expired_token_is_refused() -> None:
    old_clock = FakeClock(_now() - timedelta(minutes=TTL_MINUTES, seconds=1))
    token = _issuer(clock=old_clock).issue(a_user(), SESSION_ID).token
    _refused(token)


def test_token_expired_a_second_ago_is_refused() -> None:
    now = int(datetime.now(UTC).timestamp())
    _refused(jwt.encode(_claims(a_user(), iat=now - 60, exp=now - 1), SECRET, algorithm="HS256"))


def test_tampered_signature_is_refused() -> None:
    token = _issuer().issue(a_user(), SESSION_ID).token
    head, body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    _refused(f"{head}.{body}.{flipped}")
    _refused(f"{head}.{body}.")
    _refused(f"{head}.{body}")


def test_tampered_payload_is_refused() -> None:
    user = a_user(token_version=1)
    token = _issuer().issue(user, SESSION_ID).token
    head, _, signature = token.split(".")
    forged = _segment(_claims(user, ver=2))
    _refused(f"{head}.{forged}.{signature}")


def test_token_signed_with_another_key_is_refused() -> None:
    other = "another-secret-that-is-also-long-enough-987654"
    _refused(jwt.encode(_claims(a_user()), other, algorithm="HS256"))
    _refused(_issuer(secret=other).issue(a_user(), SESSION_ID).token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_token_is_refused(alg: str) -> None:
    user = a_user()
    _refused(_hand_made({"alg": alg, "typ": "JWT"}, _claims(user), key=None))
    _refused(_hand_made({"alg": alg, "typ": "JWT"}, _claims(user)))


def test_header_without_alg_is_refused() -> None:
    _refused(_hand_made({"typ": "JWT"}, _claims(a_user())))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_of_another_hmac_algorithm_is_refused(algorithm: str) -> None:
    _refused(jwt.encode(_claims(a_user()), SECRET, algorithm=algorithm))


def test_hs256_token_is_refused_when_hs512_is_configured() -> None:
    _refused(_issuer().issue(a_user(), SESSION_ID).token, _issuer("HS512"))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "hs256", ["HS256"]])
def test_header_claiming_another_algorithm_over_an_hmac_signature_is_refused(alg: object) -> None:
    # The algorithm-switching attack: the server must not let the header pick the verifier.
    _refused(_hand_made({"alg": alg, "typ": "JWT"}, _claims(a_user())))


def test_genuine_rs256_token_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    _refused(jwt.encode(_claims(a_user()), pem, algorithm="RS256"))


# Claims


@pytest.mark.parametrize("token_type", ["refresh", "ACCESS", "access ", "", None, 1, ["access"]])
def test_token_of_another_type_is_refused(token_type: object) -> None:
    _refused(jwt.encode(_claims(a_user(), type=token_type), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("claim", ["exp", "sub", "ver", "type", "iat", "jti", "sid"])
def test_token_missing_a_required_claim_is_refused(claim: str) -> None:
    _refused(jwt.encode(_claims(a_user(), **{claim: MISSING}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("version", ["0", 0.0, 1.5, True, False, None, [0], {"v": 0}])
def test_token_with_a_non_integer_version_is_refused(version: object) -> None:
    _refused(jwt.encode(_claims(a_user(), ver=version), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("subject", [123, None, ["x"], {"id": "x"}])
def test_token_with_a_non_string_subject_is_refused(subject: object) -> None:
    _refused(jwt.encode(_claims(a_user(), sub=subject), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("session_id", [123, None, True, ["x"], {"id": "x"}])
def test_token_with_a_non_string_session_id_is_refused(session_id: object) -> None:
    _refused(jwt.encode(_claims(a_user(), sid=session_id), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("claim", ["sub", "sid"])
@pytest.mark.parametrize("value", ["", "1", "not-a-uuid", "' OR 1=1 --", "\x00"])
def test_token_whose_subject_or_session_is_not_an_id_is_refused(claim: str, value: str) -> None:
    """Signed by us all the same: read once into ids, and refused if they are not."""
    _refused(jwt.encode(_claims(a_user(), **{claim: value}), SECRET, algorithm="HS256"))


def test_hand_made_sid_reads_back_as_the_session_id() -> None:
    session_id = ID.new()
    token = jwt.encode(_claims(a_user(), sid=str(session_id)), SECRET, algorithm="HS256")
    assert _issuer().read(token).session_id == session_id


@pytest.mark.parametrize("exp", ["tomorrow", None, [1], {"at": 1}])
def test_token_with_a_malformed_expiry_is_refused(exp: object) -> None:
    _refused(jwt.encode(_claims(a_user(), exp=exp), SECRET, algorithm="HS256"))


def test_issuer_is_set_and_enforced_when_configured() -> None:
    user = a_user()
    with_iss = _issuer(issuer=ISSUER)
    token = with_iss.issue(user, SESSION_ID).token
    assert jwt.get_unverified_claims(token)["iss"] == ISSUER
    assert with_iss.read(token).subject == user.id
    _refused(_issuer().issue(user, SESSION_ID).token, with_iss)
    _refused(_issuer(issuer="https://elsewhere.test").issue(user, SESSION_ID).token, with_iss)


def test_audience_is_set_and_enforced_when_configured() -> None:
    user = a_user()
    with_aud = _issuer(audience=AUDIENCE)
    token = with_aud.issue(user, SESSION_ID).token
    assert jwt.get_unverified_claims(token)["aud"] == AUDIENCE
    assert with_aud.read(token).subject == user.id
    _refused(_issuer().issue(user, SESSION_ID).token, with_aud)
    _refused(_issuer(audience="another-service").issue(user, SESSION_ID).token, with_aud)


def test_issuer_and_audience_together() -> None:
    user = a_user()
    both = _issuer(issuer=ISSUER, audience=AUDIENCE)
    assert both.read(both.issue(user, SESSION_ID).token).subject == user.id
    _refused(_issuer(issuer=ISSUER).issue(user, SESSION_ID).token, both)
    _refused(_issuer(audience=AUDIENCE).issue(user, SESSION_ID).token, both)


def test_no_iss_or_aud_claims_when_not_configured() -> None:
    claims = jwt.get_unverified_claims(
        _issuer(issuer="", audience="").issue(a_user(), SESSION_ID).token
    )
    assert "iss" not in claims
    assert "aud" not in claims


# Size and garbage


def test_our_tokens_are_far_below_the_size_limit() -> None:
    token = _issuer(issuer=ISSUER, audience=AUDIENCE).issue(a_user(), SESSION_ID).token
    assert len(token) * 4 < MAX_TOKEN_LENGTH


def test_oversized_token_is_refused_even_when_correctly_signed() -> None:
    user = a_user()
    token = jwt.encode(_claims(user, pad="x" * MAX_TOKEN_LENGTH), SECRET, algorithm="HS256")
    assert len(token) > MAX_TOKEN_LENGTH
    _refused(token)
    _refused("A" * (MAX_TOKEN_LENGTH + 1))
    _refused("a." * 1_000_000)


def test_correctly_signed_token_just_under_the_limit_is_read() -> None:
    user = a_user()
    bare = len(jwt.encode(_claims(user, pad=""), SECRET, algorithm="HS256"))
    pad = "x" * ((MAX_TOKEN_LENGTH - bare) * 3 // 4 - 3)
    token = jwt.encode(_claims(user, pad=pad), SECRET, algorithm="HS256")
    assert MAX_TOKEN_LENGTH - 8 <= len(token) <= MAX_TOKEN_LENGTH
    assert _issuer().read(token).subject == user.id


@pytest.mark.parametrize(
    "token",
    [
        "",
        " ",
        "garbage",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "...",
        "..",
        ".",
        "Bearer abc.def.ghi",
        "\x00",
        "é.é.é",
        "\ud800.\ud800.\ud800",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..",
        "%%%.%%%.%%%",
        "null.null.null",
    ],
)
def test_garbage_is_refused(token: str) -> None:
    _refused(token)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        (["alg", "HS256"], {"sub": "x"}),
        ("HS256", {"sub": "x"}),
        (None, {"sub": "x"}),
        (42, {"sub": "x"}),
        ({"alg": "HS256"}, ["sub", "x"]),
        ({"alg": "HS256"}, "a string"),
        ({"alg": "HS256"}, None),
        ({"alg": "HS256"}, 1e999),
    ],
)
def test_header_or_payload_that_is_not_a_json_object_is_refused(
    header: object, payload: object
) -> None:
    _refused(_hand_made(header, payload))


def test_segments_that_are_not_json_are_refused() -> None:
    for head, body in [("not json", "{}"), ('{"alg":"HS256"}', "not json"), ("\xff", "\xfe")]:
        signing_input = f"{_b64(head.encode('latin-1'))}.{_b64(body.encode('latin-1'))}"
        signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        _refused(f"{signing_input}.{_b64(signature)}")


def test_deeply_nested_claims_are_refused_without_crashing() -> None:
    _refused(_hand_made({"alg": "HS256"}, json.loads("[" * 500 + "]" * 500)))


# Verified tokens are remembered; their expiry is checked on every read.


def test_a_remembered_token_still_expires() -> None:
    clock = FakeClock(_now())
    issuer = _issuer(clock=clock)
    token = issuer.issue(a_user(), SESSION_ID).token
    assert issuer.read(token).token_version == 0  # verified and remembered

    clock.advance(minutes=TTL_MINUTES)
    assert issuer.read(token).token_version == 0  # valid through the second `exp` names
    clock.advance(seconds=1)
    with pytest.raises(InvalidToken):
        issuer.read(token)


def test_a_tampered_copy_of_a_remembered_token_is_refused() -> None:
    issuer = _issuer()
    token = issuer.issue(a_user(), SESSION_ID).token
    issuer.read(token)
    header, payload, signature = token.split(".")
    with pytest.raises(InvalidToken):
        issuer.read(f"{header}.{payload}.{signature[:-2]}AA")


def test_remembered_tokens_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.infra.auth.jwt_token_issuer.VERIFIED_TOKENS_KEPT", 3)
    issuer = _issuer()
    tokens = [issuer.issue(a_user(), SESSION_ID).token for _ in range(5)]
    for token in tokens:
        issuer.read(token)
    assert len(issuer._verified) == 3
    assert list(issuer._verified) == tokens[2:]  # the oldest went first

"""OpenID Connect bearer tokens (identity/oidc.py) against a real issuer on a loopback port:
what is accepted, every way a token is refused (the classic JWT attacks included), and how
the issuer's keys are fetched, cached, refreshed and rate-limited.

The verifier's intervals (refresh rate limit, retry back-off, cache lifetime) run on a
``FakeClock`` the test moves: no test sleeps for an interval to pass, and each boundary is
checked on both sides. Only the HTTP requests themselves take real time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from chat_service.identity.oidc import (
    ALLOWED_ALGORITHMS,
    InvalidToken,
    IssuerUnavailable,
    OidcVerifier,
    jwks_uri_allowed,
    signing_keys,
)
from tests.support.oidc_issuer import (
    EcCurve,
    Fault,
    OidcIssuer,
    OkpCurve,
    ec_key,
    hand_made_token,
    okp_key,
    rsa_key,
)
from tests.support.service import free_port

AUDIENCE = "chat-service"
MakeVerifier = Callable[..., Awaitable[OidcVerifier]]


class FakeClock:
    """The verifier's monotonic clock, moved only by ``advance``: an interval passes when the
    test says so, whatever the machine's load. Starts at 0, as a monotonic clock may."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def subject_of(verifier: OidcVerifier, token: str) -> str:
    """Whom ``token`` names, once verified."""
    return (await verifier.verify(token)).subject


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience=AUDIENCE) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_verifier(issuer: OidcIssuer, clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    """``await make_verifier(**options)``: a verifier of ``issuer`` on the test's ``clock``
    (unless ``clock=`` is given), closed after the test."""
    made: list[OidcVerifier] = []

    async def make(issuer_url: str | None = None, **options: Any) -> OidcVerifier:
        options.setdefault("clock", clock)
        verifier = OidcVerifier(issuer_url or issuer.url, AUDIENCE, **options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.close()


async def reason(verifier: OidcVerifier, token: str) -> str:
    """Why ``token`` is refused: the exception's ``reason``, which is also its message."""
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token)
    assert str(refused.value) == refused.value.reason
    return refused.value.reason


async def unavailable(verifier: OidcVerifier, token: str) -> int:
    """The ``retry_after`` of the ``IssuerUnavailable`` that verifying ``token`` raises (whose
    message names the issuer, for the logs)."""
    with pytest.raises(IssuerUnavailable) as raised:
        await verifier.verify(token)
    assert f"OpenID Connect issuer {verifier.issuer} are unavailable" in str(raised.value)
    return raised.value.retry_after


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll, for up to 5 s, for what a background refresh does: its effect is a request
    counted on the issuer's thread, so there is no event of this loop to await."""
    for _ in range(250):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met within 5 s")


def fetch_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The failed fetches logged, each as "<kind of failure>; <what the verifier keeps>"."""
    marker = ": keys not fetched: "
    return [
        record.getMessage().split(marker, 1)[1]
        for record in caplog.records
        if marker in record.getMessage()
    ]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every ERROR record (asyncio's "Exception in callback" among them)."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def refreshing() -> bool:
    """Whether a key refresh is under way on this loop. A verify that starts one creates its
    task before returning, so ``not refreshing()`` right after a verify means none started,
    without waiting to see whether a request shows up at the issuer."""
    return any(
        task.get_name() == "oidc-jwks-refresh" and not task.done() for task in asyncio.all_tasks()
    )


async def refreshed(issuer: OidcIssuer, jwks_requests: int) -> None:
    """Wait for the background refresh under way to end; the issuer has then served
    ``jwks_requests`` key sets in all."""
    assert refreshing()
    await eventually(lambda: not refreshing())
    assert issuer.jwks_requests == jwks_requests


def x25519_jwk(kid: str) -> dict[str, Any]:
    """An OKP key of a curve for key agreement, not signatures (X25519), as issuers that
    also encrypt publish beside their signing keys."""
    public = x25519.X25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "X25519", "x": x, "kid": kid}


# -- accepted -----------------------------------------------------------------------------


async def test_a_valid_token_names_its_subject(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert await subject_of(verifier, issuer.token({"sub": "bob"})) == "bob"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)  # then cached
    assert issuer.accept_headers == ["application/json", "application/json"]
    assert errors_logged(caplog) == []  # a fetch that went well is no error


async def test_an_ec_key_signs_too(issuer: OidcIssuer, make_verifier: MakeVerifier) -> None:
    ec = next(key for key in issuer.published if key.algorithm == "ES256")
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token({"sub": "carol"}, key=ec)) == "carol"


async def test_an_audience_list_containing_ours_is_accepted(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token({"aud": ["other-api", AUDIENCE]})) == "alice"


async def test_times_within_the_leeway_are_accepted(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """A clock up to 30 s off either way: expired 10 s ago, valid in 10 s, issued in 10 s."""
    verifier = await make_verifier()
    now = int(time.time())
    token = issuer.token({"exp": now - 10, "nbf": now + 10, "iat": now + 10})
    assert await subject_of(verifier, token) == "alice"


async def test_a_key_without_declared_alg_verifies_every_algorithm_of_its_type(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    key = issuer.add_key(rsa_key("rsa-any", declare_alg=False))
    verifier = await make_verifier()
    for algorithm in ("RS256", "RS512", "PS256", "PS384"):
        token = issuer.token({"sub": algorithm}, key=key, algorithm=algorithm)
        assert await subject_of(verifier, token) == algorithm


async def test_a_key_with_declared_alg_verifies_only_that_algorithm(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert issuer.default_key.public_jwk["alg"] == "RS256"
    assert await reason(verifier, issuer.token(algorithm="PS256")) == "algorithm does not match key"
    # A header naming another family than the key's: an EC algorithm over the RSA key's kid.
    ec = ec_key()
    forged = issuer.token(key=ec, kid=issuer.default_key.kid)
    assert await reason(verifier, forged) == "algorithm does not match key"


async def test_an_issuer_with_a_trailing_slash_is_matched_exactly(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """Discovery is found under the issuer without its slash; ``iss`` must still be exact."""
    issuer.advertised_issuer = issuer.url + "/"
    verifier = await make_verifier(issuer.url + "/")
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert await reason(verifier, issuer.token({"iss": issuer.url})) == "wrong issuer"


@pytest.mark.parametrize("trailing_slash", ["", "/"])
async def test_an_issuer_with_a_path_is_found_under_it(
    make_verifier: MakeVerifier, trailing_slash: str
) -> None:
    """An issuer on a path of its host (a Keycloak realm, a tenant) serves discovery under
    that path; only the slashes at the end of the issuer are dropped to find it."""
    with OidcIssuer(audience=AUDIENCE, path="/realms/TEAM-X") as realm:
        realm.advertised_issuer = realm.url + trailing_slash
        verifier = await make_verifier(realm.url + trailing_slash)
        assert await subject_of(verifier, realm.token()) == "alice"
        assert (realm.discovery_requests, realm.jwks_requests) == (1, 1)


async def test_the_verifier_as_the_app_builds_it(issuer: OidcIssuer) -> None:
    """chat_service/app.py passes the issuer and the audience only: the real monotonic clock
    and the documented defaults must make a working verifier."""
    verifier = OidcVerifier(issuer.url, AUDIENCE)
    try:
        await verifier.start()
        assert await subject_of(verifier, issuer.token()) == "alice"
        assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)
    finally:
        await verifier.close()
    # The one default no test waits out (it would take 5 s of real time per run).
    assert verifier.timeout_s == 5.0


@pytest.mark.parametrize(
    ("curve", "algorithm"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")]
)
async def test_ec_keys_of_each_allowed_curve_verify_their_algorithm(
    issuer: OidcIssuer, make_verifier: MakeVerifier, curve: EcCurve, algorithm: str
) -> None:
    """Published without ``alg``: the curve alone says which algorithm the key may verify."""
    key = issuer.add_key(ec_key(curve=curve, declare_alg=False))
    verifier = await make_verifier()
    assert (
        await subject_of(verifier, issuer.token({"sub": curve}, key=key, algorithm=algorithm))
        == curve
    )
    for other in {"ES256", "ES384", "ES512"} - {algorithm}:
        forged = hand_made_token({"alg": other, "kid": key.kid}, issuer.claims(), lambda _: b"x")
        assert await reason(verifier, forged) == "algorithm does not match key"


@pytest.mark.parametrize("declare_alg", [True, False])
@pytest.mark.parametrize("curve", ["Ed25519", "Ed448"])
async def test_eddsa_keys_verify(
    issuer: OidcIssuer, make_verifier: MakeVerifier, curve: OkpCurve, declare_alg: bool
) -> None:
    """EdDSA over both curves RFC 8037 defines for signatures, with ``alg`` or without."""
    key = issuer.add_key(okp_key(curve=curve, declare_alg=declare_alg))
    assert key.public_jwk["kty"] == "OKP"
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token({"sub": curve}, key=key)) == curve
    forged = hand_made_token({"alg": "ES256", "kid": key.kid}, issuer.claims(), lambda _: b"x")
    assert await reason(verifier, forged) == "algorithm does not match key"


async def test_a_key_without_use_verifies(issuer: OidcIssuer, make_verifier: MakeVerifier) -> None:
    """``use`` is optional in a JWK (RFC 7517 §4.2), and issuers leave it out."""
    key = issuer.add_key(rsa_key(declare_use=False))
    assert "use" not in key.public_jwk
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token(key=key)) == "alice"


def test_members_that_allow_verifying_keep_a_key() -> None:
    """``use: sig`` or none, ``key_ops`` naming ``verify`` or none: each key is kept, with its
    algorithm."""
    base = rsa_key().public_jwk
    entries = [
        {**base, "kid": "use-sig"},
        {key: value for key, value in base.items() if key != "use"} | {"kid": "no-use"},
        {**base, "kid": "verify-only", "key_ops": ["verify"]},
        {**base, "kid": "sign-and-verify", "key_ops": ["sign", "verify"]},
    ]
    keys = signing_keys({"keys": entries})
    assert [(key.kid, set(key.algorithms)) for key in keys] == [
        ("use-sig", {"RS256"}),
        ("no-use", {"RS256"}),
        ("verify-only", {"RS256"}),
        ("sign-and-verify", {"RS256"}),
    ]


# -- refused ------------------------------------------------------------------------------


async def test_an_expired_token_is_refused(issuer: OidcIssuer, make_verifier: MakeVerifier) -> None:
    verifier = await make_verifier()
    past = int(time.time()) - 60  # beyond the 30 s leeway
    assert await reason(verifier, issuer.token({"exp": past})) == "token expired"


async def test_a_token_expired_for_exactly_the_leeway_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """``exp`` a whole 30 s before now (now's fraction of a second only adds to it): past the
    leeway, which tolerates less than 30 s."""
    verifier = await make_verifier()
    exp = int(time.time()) - 30
    assert await reason(verifier, issuer.token({"exp": exp})) == "token expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_a_token_from_the_future_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier, claim: str
) -> None:
    verifier = await make_verifier()
    future = int(time.time()) + 120
    assert await reason(verifier, issuer.token({claim: future})) == "token not yet valid"


async def test_a_token_of_another_issuer_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    token = issuer.token({"iss": "https://evil.example"})
    assert await reason(verifier, token) == "wrong issuer"


@pytest.mark.parametrize("audience", ["other-api", ["other-api", "third-api"], "chat-service2"])
async def test_a_token_for_another_audience_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier, audience: Any
) -> None:
    verifier = await make_verifier()
    assert await reason(verifier, issuer.token({"aud": audience})) == "wrong audience"


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
async def test_each_required_claim_must_be_present(
    issuer: OidcIssuer, make_verifier: MakeVerifier, claim: str
) -> None:
    verifier = await make_verifier()
    assert await reason(verifier, issuer.token(omit=[claim])) == f"missing {claim} claim"


@pytest.mark.parametrize("subject", ["", 42, ["alice"], "a\x00b", "line\nbreak", "s" * 256])
async def test_the_subject_must_be_a_non_empty_string(
    issuer: OidcIssuer, make_verifier: MakeVerifier, subject: Any
) -> None:
    verifier = await make_verifier()
    assert await reason(verifier, issuer.token({"sub": subject})) == "invalid subject"


# chr(): ruff takes the escapes of two lone surrogates for one string (PT014, a duplicate).
@pytest.mark.parametrize(
    "subject", [chr(0xD800), chr(0xDFFF), "alice" + chr(0xDC80), chr(0xD83D) + "x"]
)
async def test_a_subject_that_is_not_text_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier, subject: str
) -> None:
    """A lone surrogate, as a token's JSON may escape it (``"\\ud800"``, which is how
    ``issuer.token`` writes it): a string to Python, but no text, as it cannot be encoded
    as UTF-8 (the store, the logs and the spans all would), so it names nobody."""
    token = issuer.token({"sub": subject})
    payload = token.split(".")[1]
    assert "\\u" in base64.urlsafe_b64decode(payload + "==").decode()  # escaped, as said
    verifier = await make_verifier()
    assert await reason(verifier, token) == "invalid subject"


@pytest.mark.parametrize("subject", ["\U0001f600", "\ufffd", "Zoë", "\ud7ff\ue000"])
async def test_a_subject_of_any_text_is_accepted(
    issuer: OidcIssuer, make_verifier: MakeVerifier, subject: str
) -> None:
    """Beyond the surrogates: a character outside the BMP (a surrogate pair in the token's
    JSON), the replacement character, and the code points either side of the surrogates."""
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token({"sub": subject})) == subject


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"iss": "\ud800"}, "wrong issuer"),
        ({"aud": "\ud800"}, "wrong audience"),
        ({"aud": ["\ud800", "other-api"]}, "wrong audience"),
        ({"exp": "\ud800"}, "malformed token"),
    ],
)
async def test_other_claims_that_are_not_text_are_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier, overrides: dict[str, Any], expected: str
) -> None:
    """The claims besides ``sub`` that verification reads are compared, never stored, but
    a lone surrogate in them must still be a refusal and not an error."""
    verifier = await make_verifier()
    assert await reason(verifier, issuer.token(overrides)) == expected


async def test_a_kid_that_is_not_text_is_an_unknown_key(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert await reason(verifier, issuer.token(kid="\ud800")) == "unknown signing key"


async def test_a_signed_payload_that_is_not_utf8_is_malformed(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """Bytes no JSON text can hold in the subject, under a valid signature."""
    verifier = await make_verifier()
    claims = json.dumps(issuer.claims({"sub": "SUBJECT"})).encode()
    key = issuer.default_key
    token = jwt.PyJWS().encode(
        claims.replace(b"SUBJECT", b"\xff\xfe"),
        key.private_key,
        algorithm="RS256",
        headers={"kid": key.kid},
    )
    assert await reason(verifier, token) == "malformed token"


async def test_a_signature_by_another_key_under_a_known_kid_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    impostor = rsa_key()  # never published
    token = issuer.token(key=impostor, kid=issuer.default_key.kid)
    assert await reason(verifier, token) == "bad signature"


async def test_a_tampered_payload_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    header, _, signature = issuer.token().split(".")
    other_payload = issuer.token({"sub": "mallory"}).split(".")[1]
    assert await reason(verifier, f"{header}.{other_payload}.{signature}") == "bad signature"


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", ""])
async def test_an_unsigned_token_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier, algorithm: str
) -> None:
    verifier = await make_verifier()
    header = {"alg": algorithm, "typ": "JWT", "kid": issuer.default_key.kid}
    token = hand_made_token(header, issuer.claims())
    assert await reason(verifier, token) == "algorithm not allowed"
    assert issuer.jwks_requests == 0  # refused before any key was looked up


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
async def test_an_hmac_keyed_with_the_public_key_is_refused(
    issuer: OidcIssuer, make_verifier: MakeVerifier, algorithm: str
) -> None:
    """The algorithm-confusion attack: the public key, known to all, as an HMAC secret."""
    verifier = await make_verifier()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    public_pem = issuer.default_key.public_pem

    def sign(data: bytes) -> bytes:
        return hmac.new(public_pem, data, digest[algorithm]).digest()

    header = {"alg": algorithm, "typ": "JWT", "kid": issuer.default_key.kid}
    token = hand_made_token(header, issuer.claims(), sign)
    assert await reason(verifier, token) == "algorithm not allowed"


def test_keys_never_offer_an_algorithm_outside_the_allow_list() -> None:
    """The second line against algorithm confusion: what decode may use comes from the key."""
    keys = signing_keys(
        {
            "keys": [
                rsa_key(declare_alg=False).public_jwk,
                ec_key(declare_alg=False).public_jwk,
                ec_key(curve="P-384", declare_alg=False).public_jwk,
                ec_key(curve="P-521", declare_alg=False).public_jwk,
                okp_key(curve="Ed25519", declare_alg=False).public_jwk,
                okp_key(curve="Ed448", declare_alg=False).public_jwk,
            ]
        }
    )
    assert [key.algorithms for key in keys] == [
        {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
        {"ES256"},
        {"ES384"},
        {"ES512"},
        {"EdDSA"},
        {"EdDSA"},
    ]
    assert not any(alg.startswith("HS") or alg.lower() == "none" for alg in ALLOWED_ALGORITHMS)


def test_unusable_and_unsafe_keys_are_skipped() -> None:
    usable = rsa_key("good")
    leaked = rsa_key("leaked")  # private material published: anyone could sign with it
    edwards = okp_key("ed")
    entries: list[Any] = [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        {**usable.public_jwk, "kid": "enc", "use": "enc"},
        {**usable.public_jwk, "kid": "wraps", "key_ops": ["wrapKey"]},
        {**usable.public_jwk, "kid": "hs-labelled", "alg": "HS256"},
        {**usable.public_jwk, "kid": 7},
        leaked.private_jwk,
        {**rsa_key("short", bits=1024).public_jwk},
        {**ec_key("k1").public_jwk, "crv": "secp256k1"},
        {**ec_key("crv-list").public_jwk, "crv": ["P-256"]},
        {**ec_key("ec-rs256").public_jwk, "alg": "RS256"},
        {**usable.public_jwk, "kid": "alg-list", "alg": ["RS256"]},
        x25519_jwk("x25519"),  # an OKP curve for key agreement, not signatures
        {**edwards.public_jwk, "kid": "okp-es256", "alg": "ES256"},
        {**edwards.public_jwk, "kid": "okp-p256", "crv": "P-256"},
        {**edwards.public_jwk, "kid": "okp-crv-list", "crv": ["Ed25519"]},
        {**edwards.private_jwk, "kid": "okp-leaked"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
        usable.public_jwk,
    ]
    assert [key.kid for key in signing_keys({"keys": entries})] == ["good"]
    assert signing_keys({"keys": "nope"}) == ()
    assert signing_keys({}) == ()


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 100 + ".y.z", "a\udcff.b.c"],
)
async def test_a_malformed_token_is_refused(make_verifier: MakeVerifier, token: str) -> None:
    verifier = await make_verifier()
    assert await reason(verifier, token) == "malformed token"


@pytest.mark.parametrize("payload", [b'["alice"]', b'"alice"', b"alice"])
async def test_a_signed_payload_that_is_no_claims_object_is_malformed(
    issuer: OidcIssuer, make_verifier: MakeVerifier, payload: bytes
) -> None:
    """Signed by the issuer's key, so only the payload's own form is wrong."""
    verifier = await make_verifier()
    key = issuer.default_key
    token = jwt.PyJWS().encode(
        payload, key.private_key, algorithm="RS256", headers={"kid": key.kid}
    )
    assert await reason(verifier, token) == "malformed token"


async def test_a_non_string_kid_is_refused(issuer: OidcIssuer, make_verifier: MakeVerifier) -> None:
    verifier = await make_verifier()
    token = hand_made_token({"alg": "RS256", "kid": 1}, issuer.claims(), lambda _: b"x")
    assert await reason(verifier, token) == "malformed token"


async def test_a_token_without_kid_needs_a_single_key(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert len(issuer.published) == 2
    assert await reason(verifier, issuer.token(omit_kid=True)) == "missing key id"

    for key in issuer.published:
        if key is not issuer.default_key:
            issuer.remove_key(key.kid)
    alone = await make_verifier()
    assert await subject_of(alone, issuer.token(omit_kid=True)) == "alice"


async def test_the_refusal_reasons_tell_the_cases_apart(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    now = int(time.time())
    cases = {
        "malformed token": "not-a-token",
        "algorithm not allowed": hand_made_token({"alg": "none"}, issuer.claims()),
        "algorithm does not match key": issuer.token(algorithm="PS256"),
        "missing key id": issuer.token(omit_kid=True),
        "unknown signing key": issuer.token(key=rsa_key("ghost")),
        "bad signature": issuer.token(key=rsa_key(), kid=issuer.default_key.kid),
        "token expired": issuer.token({"exp": now - 3600}),
        "token not yet valid": issuer.token({"nbf": now + 3600}),
        "wrong issuer": issuer.token({"iss": "https://evil.example"}),
        "wrong audience": issuer.token({"aud": "other-api"}),
        "missing sub claim": issuer.token(omit=["sub"]),
        "invalid subject": issuer.token({"sub": ""}),
    }
    seen = {expected: await reason(verifier, token) for expected, token in cases.items()}
    assert seen == {expected: expected for expected in cases}
    # Nothing of the token leaks into what a client is told.
    assert all(len(said) < 40 and "." not in said for said in seen.values())


# -- discovery and the key set document ---------------------------------------------------


@pytest.mark.parametrize(
    ("issuer_url", "jwks_uri", "allowed"),
    [
        ("https://id.example", "https://id.example/jwks", True),
        ("https://id.example", "https://keys.example:8443/jwks", True),
        # Never a downgrade from the issuer's TLS: anyone on the path could swap the keys.
        ("https://id.example", "http://id.example/jwks", False),
        ("https://id.example", "http://127.0.0.1/jwks", False),
        # A plain-HTTP issuer (allowed only on this machine) may use either scheme.
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/jwks", True),
        ("http://127.0.0.1:8080", "https://id.example/jwks", True),
        ("http://localhost", "http://localhost/jwks", True),
        # Absolute URLs with a host only.
        ("https://id.example", "https:///jwks", False),
        ("https://id.example", "https:jwks", False),
        ("https://id.example", "/jwks", False),
        ("https://id.example", "//id.example/jwks", False),
        ("http://127.0.0.1", "/jwks", False),
        ("http://127.0.0.1", "http:///jwks", False),
        # No other scheme, whatever the issuer's.
        ("https://id.example", "ftp://id.example/jwks", False),
        ("http://127.0.0.1", "file:///etc/jwks", False),
        ("http://127.0.0.1", "ws://127.0.0.1/jwks", False),
        # Not a URL at all (yarl refuses it): refused like any other, not an error.
        ("https://id.example", "https://[::1/jwks", False),
        ("http://127.0.0.1", "http://127.0.0.1:99999/jwks", False),
    ],
)
def test_which_jwks_uri_an_issuer_may_name(issuer_url: str, jwks_uri: str, allowed: bool) -> None:
    assert jwks_uri_allowed(issuer_url, jwks_uri) is allowed


@pytest.mark.parametrize(
    "jwks_uri", ["ftp://127.0.0.1/jwks.json", "/jwks.json", "http:///jwks", "http://[::1/jwks"]
)
async def test_a_jwks_uri_not_allowed_is_never_fetched(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture, jwks_uri: str
) -> None:
    """A failed fetch like any other: logged, and backed off from."""
    issuer.advertised_jwks_uri = jwks_uri
    verifier = await make_verifier()
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await unavailable(verifier, issuer.token()) == 5
    assert fetch_failures(caplog) == [
        "discovery's jwks_uri is not an absolute https URL; no keys yet"
    ]
    assert await unavailable(verifier, issuer.token()) == 5
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 0)


async def test_a_key_set_read_in_several_chunks_is_read_whole(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """200 kB arrive as several reads (of at most 64 KiB): all of them make the document."""
    issuer.jwks_size = 200_000
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert issuer.jwks_requests == 1


async def test_a_key_set_of_many_keys_is_read_whole(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """Over 64 KiB of keys, with the one that signs last: it is found in the last read."""
    issuer.extra_jwks = [rsa_key(f"spare-{n}").public_jwk for n in range(4)] * 40
    last = okp_key("last")
    issuer.extra_jwks.append(last.public_jwk)
    verifier = await make_verifier()
    assert await subject_of(verifier, issuer.token({"sub": "last"}, key=last)) == "last"
    assert await subject_of(verifier, issuer.token()) == "alice"


@pytest.mark.parametrize(("size", "accepted"), [(1_048_576, True), (1_048_577, False)])
async def test_documents_are_read_up_to_one_mib(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    caplog: pytest.LogCaptureFixture,
    size: int,
    accepted: bool,
) -> None:
    issuer.jwks_size = size
    verifier = await make_verifier()
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        if accepted:
            assert await subject_of(verifier, issuer.token()) == "alice"
        else:
            assert await unavailable(verifier, issuer.token()) == 5
    assert fetch_failures(caplog) == (
        [] if accepted else ["key set exceeds 1048576 bytes; no keys yet"]
    )


async def test_a_smaller_document_limit_is_kept(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = await make_verifier(max_document_bytes=100_000)
    issuer.jwks_size = 100_001
    assert await unavailable(verifier, issuer.token()) == 5
    issuer.jwks_size = 100_000
    clock.advance(5)
    assert await subject_of(verifier, issuer.token()) == "alice"


# -- keys: refresh, rotation, rate limit --------------------------------------------------


async def test_an_unknown_kid_refreshes_once_then_is_rate_limited(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = await make_verifier()
    await verifier.start()
    assert issuer.jwks_requests == 1

    assert await reason(verifier, issuer.token(key=rsa_key("ghost-1"))) == "unknown signing key"
    assert issuer.jwks_requests == 2  # one refresh, in case the issuer had rotated
    for number in range(2, 12):  # a flood of random kids costs the issuer nothing more
        token = issuer.token(key=rsa_key(f"ghost-{number}"))
        assert await reason(verifier, token) == "unknown signing key"
    assert issuer.jwks_requests == 2
    assert await subject_of(verifier, issuer.token()) == "alice"  # known keys unaffected

    clock.advance(59.5)  # within the minute: still nothing
    assert await reason(verifier, issuer.token(key=rsa_key("ghost-12"))) == "unknown signing key"
    assert issuer.jwks_requests == 2
    clock.advance(0.5)  # a minute after the refresh: one more
    assert await reason(verifier, issuer.token(key=rsa_key("ghost-13"))) == "unknown signing key"
    assert issuer.jwks_requests == 3
    assert await reason(verifier, issuer.token(key=rsa_key("ghost-14"))) == "unknown signing key"
    assert issuer.jwks_requests == 3


async def test_a_rotated_key_is_fetched_when_first_seen(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = await make_verifier(refresh_interval_s=10)
    await verifier.start()
    new = issuer.rotate()
    assert await subject_of(verifier, issuer.token({"sub": "after-rotation"})) == "after-rotation"
    assert issuer.jwks_requests == 2
    assert new.kid in {key.kid for key in verifier.keys}

    newer = issuer.rotate()  # right after a refresh: the rate limit holds it back...
    assert await reason(verifier, issuer.token(key=newer)) == "unknown signing key"
    assert issuer.jwks_requests == 2
    clock.advance(9.5)
    assert await reason(verifier, issuer.token(key=newer)) == "unknown signing key"
    assert issuer.jwks_requests == 2
    clock.advance(0.5)  # ...until the interval has passed
    assert await subject_of(verifier, issuer.token(key=newer)) == "alice"
    assert issuer.jwks_requests == 3
    assert issuer.discovery_requests == 1  # the key set's URL is remembered


async def test_a_withdrawn_key_stops_verifying_after_the_next_refresh(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    old = issuer.default_key
    assert await subject_of(verifier, issuer.token()) == "alice"
    issuer.rotate()
    issuer.remove_key(old.kid)
    assert await subject_of(verifier, issuer.token()) == "alice"  # the new kid: refresh
    assert await reason(verifier, issuer.token(key=old)) == "unknown signing key"


async def test_concurrent_tokens_with_a_new_kid_cause_one_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    await verifier.start()
    issuer.rotate()
    issuer.hold_jwks()  # every verify arrives while the fetch is under way
    tokens = [issuer.token({"sub": f"user-{n}"}) for n in range(25)]
    verifying = asyncio.gather(*(verifier.verify(token) for token in tokens))
    await eventually(lambda: issuer.jwks_requests == 2)
    issuer.release_jwks()
    assert [v.subject for v in await verifying] == [f"user-{n}" for n in range(25)]
    assert issuer.jwks_requests == 2


async def test_concurrent_first_tokens_cause_one_discovery_and_one_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    issuer.hold_jwks()
    verifying = asyncio.gather(*(verifier.verify(issuer.token()) for _ in range(25)))
    await eventually(lambda: issuer.jwks_requests == 1)
    issuer.release_jwks()
    assert [v.subject for v in await verifying] == ["alice"] * 25
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


async def test_a_caller_giving_up_does_not_cancel_the_shared_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    issuer.hold_jwks()
    impatient = asyncio.create_task(verifier.verify(issuer.token()))
    patient = asyncio.create_task(verifier.verify(issuer.token({"sub": "patient"})))
    await eventually(lambda: issuer.jwks_requests == 1)
    impatient.cancel()
    await asyncio.gather(impatient, return_exceptions=True)
    issuer.release_jwks()
    assert (await patient).subject == "patient"
    assert impatient.cancelled()
    assert issuer.jwks_requests == 1


@pytest.mark.parametrize(
    ("cache_control", "expires_after_s"),
    [
        (None, 3600),  # the cache lifetime
        ("public, max-age=120", 120),
        ("max-age=120, must-revalidate", 120),
        ('MAX-AGE = "120"', 120),
        ("no-cache max-age=120", 120),
        ("public, max-age=86400", 3600),  # capped by the cache lifetime
        ("max-age=0", 60),  # held to the refresh interval: not a fetch per request
        ("max-age=10", 60),
        ("s-maxage=120", 3600),  # another directive
        ("x-max-age=120", 3600),
        ("no-store", 3600),
    ],
)
async def test_keys_are_refetched_in_the_background_when_the_cache_expires(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    cache_control: str | None,
    expires_after_s: int,
) -> None:
    """Past its expiry, the next token is checked with the cached keys while they are
    refetched in the background; before it, the keys are not fetched again."""
    issuer.jwks_cache_control = cache_control
    verifier = await make_verifier()
    await verifier.start()
    clock.advance(expires_after_s - 0.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert not refreshing()
    assert issuer.jwks_requests == 1
    clock.advance(0.5)
    issuer.rotate()
    old_key = issuer.published[0]
    issuer.remove_key(old_key.kid)
    assert await subject_of(verifier, issuer.token(key=old_key)) == "alice"  # the cached keys
    await refreshed(issuer, 2)
    assert await subject_of(verifier, issuer.token()) == "alice"  # the new key, already fetched
    assert issuer.jwks_requests == 2
    # The refetched keys are cached as long again.
    clock.advance(expires_after_s - 0.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert not refreshing()
    clock.advance(0.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    await refreshed(issuer, 3)


async def test_a_cache_lifetime_and_refresh_interval_of_choice_are_kept(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    issuer.jwks_cache_control = "max-age=0"
    verifier = await make_verifier(cache_lifetime_s=300, refresh_interval_s=20)
    await verifier.start()
    clock.advance(19.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert not refreshing()
    issuer.jwks_cache_control = None  # from the next fetch on: the lifetime, 300 s
    clock.advance(0.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    await refreshed(issuer, 2)

    clock.advance(299.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert not refreshing()
    clock.advance(0.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    await refreshed(issuer, 3)


# -- the issuer unavailable ---------------------------------------------------------------

FAULTS: list[Fault] = ["unavailable", "disconnect", "bad_json", "slow"]
FAILURES = {  # what follows "discovery" or "key set" in the log
    "unavailable": " answered HTTP 503",
    "disconnect": ": ServerDisconnectedError",
    "bad_json": " is not JSON",
    "slow": " timed out after 2 s",
}


@pytest.mark.parametrize("endpoint", ["discovery", "jwks"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_no_keys_yet_and_the_issuer_failing_is_unavailable_not_invalid(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    fault: Fault,
) -> None:
    """503 with Retry-After, not 401: the token may be fine. The log names the issuer and
    the kind of failure, for whoever runs the service."""
    setattr(issuer, f"{endpoint}_fault", fault)
    # Long enough for the issuer's other faults to be answered on a loaded machine (at 0.3 s,
    # CI once saw a 503 time out first).
    verifier = await make_verifier(timeout_s=2, retry_interval_s=2.5)
    with (
        caplog.at_level(logging.WARNING, "chat_service.identity.oidc"),
        pytest.raises(IssuerUnavailable) as raised,
    ):
        await verifier.verify(issuer.token())
    assert raised.value.retry_after == 3  # whole seconds, rounded up
    assert issuer.url in str(raised.value)
    what = "discovery" if endpoint == "discovery" else "key set"
    assert fetch_failures(caplog) == [f"{what}{FAILURES[fault]}; no keys yet"]


@pytest.mark.parametrize(("retry_interval_s", "retry_after"), [(0, 1), (0.2, 1), (1, 1), (1.2, 2)])
async def test_retry_after_is_whole_seconds_and_at_least_one(
    issuer: OidcIssuer, make_verifier: MakeVerifier, retry_interval_s: float, retry_after: int
) -> None:
    issuer.go_down()
    verifier = await make_verifier(retry_interval_s=retry_interval_s)
    assert await unavailable(verifier, issuer.token()) == retry_after


async def test_a_down_issuer_is_asked_again_only_after_the_retry_interval(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    issuer.go_down()
    verifier = await make_verifier()
    assert await unavailable(verifier, issuer.token()) == 5
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 0)
    issuer.come_back()
    clock.advance(2.5)  # backing off: nothing sent, and the wait left is told
    assert await unavailable(verifier, issuer.token()) == 3
    clock.advance(2)
    assert await unavailable(verifier, issuer.token()) == 1
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 0)
    clock.advance(0.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (2, 1)


async def test_after_a_key_set_failure_discovery_is_asked_again(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """The key set may have moved, which only discovery can tell."""
    issuer.jwks_fault = "unavailable"
    verifier = await make_verifier()
    assert await unavailable(verifier, issuer.token()) == 5
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)
    issuer.come_back()
    issuer.rotate()
    clock.advance(5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (2, 2)


async def test_a_key_set_that_moved_is_found_again(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = await make_verifier()
    issuer.advertised_jwks_uri = f"{issuer.url}/old-keys.json"  # answered 404
    assert await unavailable(verifier, issuer.token()) == 5
    issuer.advertised_jwks_uri = None
    clock.advance(5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (2, 1)


async def test_a_discovery_naming_another_issuer_is_not_trusted(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    issuer.advertised_issuer = "https://accounts.example"
    verifier = await make_verifier()
    token = issuer.token({"iss": issuer.url})
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await unavailable(verifier, token) == 5
    assert issuer.jwks_requests == 0
    assert fetch_failures(caplog) == [f"{mismatch('https://accounts.example')}; no keys yet"]
    issuer.advertised_issuer = None
    clock.advance(5)
    assert await subject_of(verifier, token) == "alice"


@pytest.mark.parametrize(
    ("document", "failure"),
    [
        ({"jwks_uri": None}, "discovery has no jwks_uri"),  # None: left out
        ({"jwks_uri": ["http://127.0.0.1/jwks.json"]}, "discovery has no jwks_uri"),
        ({"issuer": None}, "its discovery document names no issuer"),
    ],
)
async def test_a_discovery_document_without_what_it_needs_is_a_failed_fetch(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    caplog: pytest.LogCaptureFixture,
    document: dict[str, Any],
    failure: str,
) -> None:
    issuer.discovery_overrides = document
    verifier = await make_verifier()
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await unavailable(verifier, issuer.token()) == 5
    assert fetch_failures(caplog) == [f"{failure}; no keys yet"]
    assert issuer.jwks_requests == 0


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        (b"[]", "key set is not a JSON object"),
        (b'"keys"', "key set is not a JSON object"),
        (b"null", "key set is not a JSON object"),
        (b"{", "key set is not JSON"),
        (b"\xff", "key set is not JSON"),  # not even UTF-8
    ],
)
async def test_a_key_set_that_is_no_json_object_is_a_failed_fetch(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    failure: str,
) -> None:
    issuer.jwks_body = body
    verifier = await make_verifier()
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await unavailable(verifier, issuer.token()) == 5
    assert fetch_failures(caplog) == [f"{failure}; no keys yet"]


async def test_an_empty_key_set_counts_as_a_failed_fetch(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    default = issuer.default_key
    for key in issuer.published:
        issuer.remove_key(key.kid)
    issuer.extra_jwks = [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]
    verifier = await make_verifier()
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await unavailable(verifier, issuer.token()) == 5
    assert fetch_failures(caplog) == ["key set has no usable signing key; no keys yet"]
    issuer.add_key(default)
    clock.advance(5)
    assert await subject_of(verifier, issuer.token()) == "alice"


async def test_start_survives_a_down_issuer(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    issuer.go_down("disconnect")
    verifier = await make_verifier()
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        await verifier.start()
    assert verifier.keys == ()
    # Not logged here: the application says it at start-up, from ``problem``.
    assert caplog.records == []
    assert verifier.problem == not_usable(verifier, "discovery: ServerDisconnectedError")
    issuer.come_back()
    assert await unavailable(verifier, issuer.token()) == 5  # start's failure backs off too
    clock.advance(5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert len(verifier.keys) == 2


async def test_with_keys_cached_a_failed_refresh_refuses_only_the_unknown_kid(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = await make_verifier()
    await verifier.start()
    issuer.go_down()
    ghost = rsa_key("ghost")
    unknown = issuer.token(key=ghost)
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await reason(verifier, unknown) == "unknown signing key"
    assert issuer.jwks_requests == 2
    assert fetch_failures(caplog) == ["key set answered HTTP 503; keeping the cached keys"]
    assert unknown not in caplog.text
    assert unknown.split(".")[2] not in caplog.text
    assert await subject_of(verifier, issuer.token()) == "alice"  # cached keys still work

    # The issuer back with the new key: it is fetched at the next allowed refresh, after
    # asking discovery again (the failed key set may have moved).
    issuer.come_back()
    issuer.add_key(ghost)
    clock.advance(59.5)
    assert await reason(verifier, unknown) == "unknown signing key"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 2)
    clock.advance(0.5)
    assert await subject_of(verifier, unknown) == "alice"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (2, 3)


async def test_after_a_failed_refresh_unknown_kids_wait_for_the_retry_interval(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """A rate limit shorter than the back-off does not shorten the back-off."""
    verifier = await make_verifier(refresh_interval_s=1, retry_interval_s=30)
    await verifier.start()
    issuer.go_down()
    ghost = issuer.add_key(rsa_key("ghost"))
    assert await reason(verifier, issuer.token(key=ghost)) == "unknown signing key"
    assert issuer.jwks_requests == 2
    issuer.come_back()
    clock.advance(29.5)
    assert await reason(verifier, issuer.token(key=ghost)) == "unknown signing key"
    assert issuer.jwks_requests == 2
    clock.advance(0.5)
    assert await subject_of(verifier, issuer.token(key=ghost)) == "alice"
    assert issuer.jwks_requests == 3


async def test_stale_keys_keep_working_while_the_issuer_is_down(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """Once the cache has expired and a refetch failed, the cached keys go on verifying;
    refetches are tried at the retry interval, and the first that succeeds brings the
    issuer's rotated keys (after asking discovery again)."""
    verifier = await make_verifier()
    await verifier.start()
    old = issuer.default_key
    issuer.go_down()
    clock.advance(3600)
    assert await subject_of(verifier, issuer.token()) == "alice"
    await refreshed(issuer, 2)  # the background refresh was tried, and failed
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert not refreshing()  # backing off
    clock.advance(4.5)
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert not refreshing()

    issuer.come_back()
    new = issuer.rotate()
    issuer.remove_key(old.kid)
    clock.advance(0.5)
    assert await subject_of(verifier, issuer.token(key=old)) == "alice"  # still the cached keys
    await refreshed(issuer, 3)
    assert issuer.discovery_requests == 2
    assert new.kid in {key.kid for key in verifier.keys}
    assert old.kid not in {key.kid for key in verifier.keys}
    assert await subject_of(verifier, issuer.token()) == "alice"
    assert issuer.jwks_requests == 3


# -- whether the issuer can be used: the problem /readyz reports ---------------------------


def not_usable(verifier: OidcVerifier, failure: str) -> str:
    return f"OpenID Connect issuer {verifier.issuer} is not usable: {failure}"


def mismatch(advertised: str) -> str:
    """The failure of a discovery document that names its issuer otherwise: what it names,
    quoted, so that a trailing slash or a space shows."""
    return (
        f"it names itself {advertised!r} in its discovery document; "
        "set CHAT_OIDC_ISSUER to exactly that"
    )


async def test_before_the_first_fetch_the_problem_is_that_no_keys_were_fetched(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert verifier.problem == not_usable(verifier, "its keys have not been fetched yet")
    assert (issuer.discovery_requests, issuer.jwks_requests) == (0, 0)  # reading asks nobody


async def test_a_usable_issuer_has_no_problem_and_start_logs_nothing(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    """start() leaves the start-up line to the application (app.py), which writes one line
    from ``problem``: the fetch's own line would say the same twice."""
    verifier = await make_verifier()
    with caplog.at_level(logging.DEBUG, "chat_service.identity.oidc"):
        await verifier.start()
    assert caplog.records == []
    assert verifier.problem is None
    assert await verifier.probe() is None
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_failed_start_is_the_problem_and_logs_nothing(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    issuer.go_down(fault)
    verifier = await make_verifier(timeout_s=2)
    with caplog.at_level(logging.DEBUG, "chat_service.identity.oidc"):
        await verifier.start()
    assert caplog.records == []
    assert verifier.problem == not_usable(verifier, f"discovery{FAILURES[fault]}")
    # A later fetch (the start-up one aside) is logged as ever.
    issuer.come_back()
    issuer.jwks_fault = "unavailable"
    clock.advance(5)
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await verifier.probe() == not_usable(verifier, "key set answered HTTP 503")
    assert fetch_failures(caplog) == ["key set answered HTTP 503; no keys yet"]


async def test_an_unreachable_issuer_is_the_problem(make_verifier: MakeVerifier) -> None:
    """Nothing listens on the issuer's port (not started yet, or a wrong port)."""
    verifier = await make_verifier(f"http://127.0.0.1:{free_port()}")
    await verifier.start()
    assert verifier.problem == not_usable(verifier, "discovery: ClientConnectorError")


@pytest.mark.parametrize("case", ["slash configured", "slash advertised", "another host"])
async def test_a_discovery_naming_the_issuer_otherwise_is_the_problem(
    issuer: OidcIssuer, make_verifier: MakeVerifier, case: str
) -> None:
    """The two ways an issuer URL is most often almost right: a trailing slash one side and
    not the other, and another name for the same host."""
    configured, advertised = {
        "slash configured": (issuer.url + "/", issuer.url),
        "slash advertised": (issuer.url, issuer.url + "/"),
        "another host": (issuer.url.replace("127.0.0.1", "localhost"), issuer.url),
    }[case]
    issuer.advertised_issuer = advertised
    verifier = await make_verifier(configured)
    await verifier.start()
    assert verifier.problem == (
        f"OpenID Connect issuer {configured} is not usable: {mismatch(advertised)}"
    )
    assert issuer.jwks_requests == 0


@pytest.mark.parametrize(
    ("advertised", "failure"),
    [
        ({"issuer": None}, "its discovery document names no issuer"),  # None: left out
        ({"issuer": ""}, "its discovery document names no issuer"),
        ({"issuer": 42}, "its discovery document names no issuer"),
        ({"issuer": ["https://sso.example"]}, "its discovery document names no issuer"),
        ({"issuer": "https://sso.example\n"}, mismatch("https://sso.example\n")),
        ({"issuer": "https://sso.example/\ud800"}, mismatch("https://sso.example/\ud800")),
        ({"issuer": "h" * 500}, mismatch("h" * 500)),
        ({"issuer": "h" * 501}, "its discovery document names another issuer, 501 characters long"),
    ],
    ids=[
        "left out",
        "empty",
        "a number",
        "a list",
        "a line break",
        "a lone surrogate",
        "500",
        "501",
    ],
)
async def test_what_a_discovery_naming_another_issuer_is_said_to_name(
    issuer: OidcIssuer, make_verifier: MakeVerifier, advertised: dict[str, Any], failure: str
) -> None:
    """What discovery says is shown escaped (a line break, a lone surrogate: the text is
    logged and sent as JSON) and only when it is short enough to read."""
    issuer.discovery_overrides = advertised
    verifier = await make_verifier()
    await verifier.start()
    assert verifier.problem == not_usable(verifier, failure)
    problem = verifier.problem
    assert "\n" not in problem
    problem.encode()  # text, whatever discovery said


@pytest.mark.parametrize("keys", ["none", "unusable"])
async def test_a_key_set_without_a_usable_key_is_the_problem(
    issuer: OidcIssuer, make_verifier: MakeVerifier, keys: str
) -> None:
    for key in issuer.published:
        issuer.remove_key(key.kid)
    if keys == "unusable":  # a symmetric key, and an RSA key too short
        short = rsa_key("short", bits=1024)
        issuer.extra_jwks = [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, short.public_jwk]
    verifier = await make_verifier()
    await verifier.start()
    assert verifier.problem == not_usable(verifier, "key set has no usable signing key")


async def test_probes_ask_a_failing_issuer_at_most_once_per_retry_interval(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """A probe is as cheap for the issuer as a token: it shares the verifier's back-off, so
    however often /readyz is asked, the issuer is asked once per retry interval at most."""
    issuer.go_down()
    verifier = await make_verifier()
    await verifier.start()
    down = not_usable(verifier, "discovery answered HTTP 503")
    issuer.come_back()
    for _ in range(3):
        assert await verifier.probe() == down
    clock.advance(4.9)
    assert await verifier.probe() == down
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 0)
    clock.advance(0.1)
    assert await verifier.probe() is None
    assert verifier.problem is None
    assert (issuer.discovery_requests, issuer.jwks_requests) == (2, 1)
    assert await verifier.probe() is None
    assert (issuer.discovery_requests, issuer.jwks_requests) == (2, 1)  # the keys are cached


async def test_a_probe_first_fetches_and_reports_what_is_wrong_now(
    issuer: OidcIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """Without start(), the first probe fetches; each fetch replaces the problem."""
    issuer.go_down()
    verifier = await make_verifier()
    assert await verifier.probe() == not_usable(verifier, "discovery answered HTTP 503")
    issuer.come_back()
    issuer.advertised_issuer = issuer.url + "/"
    clock.advance(5)
    assert await verifier.probe() == not_usable(verifier, mismatch(issuer.url + "/"))
    issuer.advertised_issuer = None
    for key in issuer.published:
        issuer.remove_key(key.kid)
    clock.advance(5)
    assert await verifier.probe() == not_usable(verifier, "key set has no usable signing key")
    assert (issuer.discovery_requests, issuer.jwks_requests) == (3, 1)


async def test_with_keys_cached_a_down_issuer_is_no_problem(
    issuer: OidcIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cached keys go on verifying tokens while the issuer is down, so the service stays
    ready: an issuer's outage must not take every replica out of service at once."""
    verifier = await make_verifier()
    await verifier.start()
    issuer.go_down()
    assert await verifier.probe() is None
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)  # not asked
    clock.advance(3600)
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await verifier.probe() is None  # the cache is due: refetched in the background
        await refreshed(issuer, 2)
    # Only start() is quiet: the background refresh a probe starts logs its failure.
    assert fetch_failures(caplog) == ["key set answered HTTP 503; keeping the cached keys"]
    assert verifier.problem is None
    assert await verifier.probe() is None
    assert await subject_of(verifier, issuer.token()) == "alice"


async def test_a_probe_and_a_token_share_one_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.hold_jwks()
    verifier = await make_verifier()
    token = asyncio.create_task(verifier.verify(issuer.token()))
    probe = asyncio.create_task(verifier.probe())
    await eventually(lambda: issuer.jwks_requests == 1)
    issuer.release_jwks()
    assert (await token).subject == "alice"
    assert await probe is None
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


async def test_close_ends_a_fetch_under_way(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing is left running after close(), and ending a fetch is no error."""
    issuer.jwks_fault = "slow"
    verifier = await make_verifier()
    pending = asyncio.create_task(verifier.verify(issuer.token()))
    await eventually(lambda: issuer.jwks_requests == 1)
    await asyncio.wait_for(verifier.close(), 2)
    assert not refreshing()
    with pytest.raises(IssuerUnavailable):  # no keys came: not the token's fault
        await pending
    assert errors_logged(caplog) == []


async def test_close_just_after_a_fetch_began_leaves_nothing_running(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """close() waits for the fetch it ends, even one that has not run a step yet (so has no
    HTTP session to close either), as at a shutdown right after start-up."""
    verifier = await make_verifier()
    starting = asyncio.create_task(verifier.start())
    await asyncio.sleep(0)  # start() has created the fetch, which has not run yet
    assert refreshing()
    await verifier.close()
    assert not refreshing()
    await starting  # start() ends without keys, and without an error
    assert verifier.keys == ()
    assert issuer.discovery_requests == 0


async def test_a_caller_cancelled_as_close_ends_the_fetch_stays_cancelled(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """A caller's own cancellation is never swallowed, even when the fetch it waited for was
    ended by close() at that very moment: asyncio's timeouts and task groups rely on a
    cancelled task ending cancelled."""
    issuer.hold_jwks()
    verifier = await make_verifier()
    caller = asyncio.create_task(verifier.verify(issuer.token()))
    await eventually(lambda: issuer.jwks_requests == 1)
    fetch = next(task for task in asyncio.all_tasks() if task.get_name() == "oidc-jwks-refresh")
    # Runs after the caller was told that the fetch ended, before the caller resumes.
    fetch.add_done_callback(lambda _: caller.cancel())
    await verifier.close()
    await asyncio.gather(caller, return_exceptions=True)
    assert caller.cancelled()

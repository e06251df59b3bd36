"""OpenID Connect bearer tokens (identity/oidc.py) against a real issuer on a loopback port:
what is accepted, every way a token is refused (the classic JWT attacks included), and how
the issuer's keys are fetched, cached, refreshed and rate-limited."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from chat_service.identity.oidc import (
    ALLOWED_ALGORITHMS,
    InvalidToken,
    IssuerUnavailable,
    OidcVerifier,
    signing_keys,
)
from tests.support.oidc_issuer import (
    Fault,
    OidcIssuer,
    ec_key,
    hand_made_token,
    rsa_key,
)

AUDIENCE = "chat-service"
MakeVerifier = Callable[..., Awaitable[OidcVerifier]]


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer(audience=AUDIENCE) as running:
        yield running


@pytest.fixture
async def make_verifier(issuer: OidcIssuer) -> AsyncIterator[MakeVerifier]:
    """``await make_verifier(**options)``: a verifier of ``issuer``, closed after the test."""
    made: list[OidcVerifier] = []

    async def make(issuer_url: str | None = None, **options: Any) -> OidcVerifier:
        verifier = OidcVerifier(issuer_url or issuer.url, AUDIENCE, **options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.close()


async def reason(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(token)
    return refused.value.reason


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll, for up to 5 s, for what a background refresh does: its effect is a request
    counted on the issuer's thread, so there is no event of this loop to await."""
    for _ in range(250):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met within 5 s")


# -- accepted -----------------------------------------------------------------------------


async def test_a_valid_token_names_its_subject(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert await verifier.verify(issuer.token()) == "alice"
    assert await verifier.verify(issuer.token({"sub": "bob"})) == "bob"
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)  # then cached


async def test_an_ec_key_signs_too(issuer: OidcIssuer, make_verifier: MakeVerifier) -> None:
    ec = next(key for key in issuer.published if key.algorithm == "ES256")
    verifier = await make_verifier()
    assert await verifier.verify(issuer.token({"sub": "carol"}, key=ec)) == "carol"


async def test_an_audience_list_containing_ours_is_accepted(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    assert await verifier.verify(issuer.token({"aud": ["other-api", AUDIENCE]})) == "alice"


async def test_times_within_the_leeway_are_accepted(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """A clock up to 30 s off either way: expired 10 s ago, valid in 10 s, issued in 10 s."""
    verifier = await make_verifier()
    now = int(time.time())
    token = issuer.token({"exp": now - 10, "nbf": now + 10, "iat": now + 10})
    assert await verifier.verify(token) == "alice"


async def test_a_key_without_declared_alg_verifies_every_algorithm_of_its_type(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    key = issuer.add_key(rsa_key("rsa-any", declare_alg=False))
    verifier = await make_verifier()
    for algorithm in ("RS256", "RS512", "PS256", "PS384"):
        token = issuer.token({"sub": algorithm}, key=key, algorithm=algorithm)
        assert await verifier.verify(token) == algorithm


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
    assert await verifier.verify(issuer.token()) == "alice"
    assert await reason(verifier, issuer.token({"iss": issuer.url})) == "wrong issuer"


# -- refused ------------------------------------------------------------------------------


async def test_an_expired_token_is_refused(issuer: OidcIssuer, make_verifier: MakeVerifier) -> None:
    verifier = await make_verifier()
    past = int(time.time()) - 60  # beyond the 30 s leeway
    assert await reason(verifier, issuer.token({"exp": past})) == "token expired"


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
    rsa, ec = rsa_key(declare_alg=False), ec_key()
    keys = signing_keys({"keys": [rsa.public_jwk, ec.public_jwk]})
    assert [key.algorithms for key in keys] == [
        {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
        {"ES256"},
    ]
    assert not any(alg.startswith("HS") or alg.lower() == "none" for alg in ALLOWED_ALGORITHMS)


def test_unusable_and_unsafe_keys_are_skipped() -> None:
    usable = rsa_key("good")
    leaked = rsa_key("leaked")  # private material published: anyone could sign with it
    entries: list[Any] = [
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        {**usable.public_jwk, "kid": "enc", "use": "enc"},
        {**usable.public_jwk, "kid": "wraps", "key_ops": ["wrapKey"]},
        {**usable.public_jwk, "kid": "hs-labelled", "alg": "HS256"},
        {**usable.public_jwk, "kid": 7},
        leaked.private_jwk,
        {**rsa_key("short", bits=1024).public_jwk},
        {**ec_key("k1").public_jwk, "crv": "secp256k1"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
        usable.public_jwk,
    ]
    assert [key.kid for key in signing_keys({"keys": entries})] == ["good"]
    assert signing_keys({"keys": "nope"}) == ()


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 100 + ".y.z", "a\udcff.b.c"],
)
async def test_a_malformed_token_is_refused(make_verifier: MakeVerifier, token: str) -> None:
    verifier = await make_verifier()
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
    assert await alone.verify(issuer.token(omit_kid=True)) == "alice"


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


# -- keys: refresh, rotation, rate limit --------------------------------------------------


async def test_an_unknown_kid_refreshes_once_then_is_rate_limited(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier(refresh_interval_s=60)
    await verifier.start()
    assert issuer.jwks_requests == 1

    assert await reason(verifier, issuer.token(key=rsa_key("ghost-1"))) == "unknown signing key"
    assert issuer.jwks_requests == 2  # one refresh, in case the issuer had rotated
    for number in range(2, 12):  # a flood of random kids costs the issuer nothing more
        token = issuer.token(key=rsa_key(f"ghost-{number}"))
        assert await reason(verifier, token) == "unknown signing key"
    assert issuer.jwks_requests == 2
    assert await verifier.verify(issuer.token()) == "alice"  # known keys unaffected


async def test_a_rotated_key_is_fetched_when_first_seen(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier(refresh_interval_s=0.8)
    await verifier.start()
    newer = rsa_key()  # made now: the rate-limited window below is kept short
    new = issuer.rotate()
    assert await verifier.verify(issuer.token({"sub": "after-rotation"})) == "after-rotation"
    assert issuer.jwks_requests == 2
    assert new.kid in {key.kid for key in verifier.keys}

    issuer.add_key(newer)  # right after a refresh: the rate limit holds it back...
    assert await reason(verifier, issuer.token(key=newer)) == "unknown signing key"
    assert issuer.jwks_requests == 2
    await asyncio.sleep(0.9)  # ...until the interval has passed
    assert await verifier.verify(issuer.token(key=newer)) == "alice"
    assert issuer.jwks_requests == 3


async def test_a_withdrawn_key_stops_verifying_after_the_next_refresh(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    old = issuer.default_key
    assert await verifier.verify(issuer.token()) == "alice"
    issuer.rotate()
    issuer.remove_key(old.kid)
    assert await verifier.verify(issuer.token()) == "alice"  # the new kid: refresh
    assert await reason(verifier, issuer.token(key=old)) == "unknown signing key"


async def test_concurrent_tokens_with_a_new_kid_cause_one_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    await verifier.start()
    issuer.rotate()
    issuer.jwks_delay_s = 0.2  # every verify arrives while the fetch is under way
    tokens = [issuer.token({"sub": f"user-{n}"}) for n in range(25)]
    subjects = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert subjects == [f"user-{n}" for n in range(25)]
    assert issuer.jwks_requests == 2


async def test_concurrent_first_tokens_cause_one_discovery_and_one_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    issuer.jwks_delay_s = 0.2
    subjects = await asyncio.gather(*(verifier.verify(issuer.token()) for _ in range(25)))
    assert subjects == ["alice"] * 25
    assert (issuer.discovery_requests, issuer.jwks_requests) == (1, 1)


async def test_a_caller_giving_up_does_not_cancel_the_shared_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier()
    issuer.jwks_delay_s = 0.3
    impatient = asyncio.create_task(verifier.verify(issuer.token()))
    patient = asyncio.create_task(verifier.verify(issuer.token({"sub": "patient"})))
    await asyncio.sleep(0.1)
    impatient.cancel()
    assert await patient == "patient"
    assert impatient.cancelled()
    assert issuer.jwks_requests == 1


async def test_keys_are_refetched_when_the_cache_expires(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    """``max-age=0`` is held to the refresh interval; past it, the next token is checked with
    the cached keys while they are refetched in the background."""
    issuer.jwks_max_age = 0
    verifier = await make_verifier(refresh_interval_s=0.5)
    await verifier.start()
    assert await verifier.verify(issuer.token()) == "alice"
    await asyncio.sleep(0.1)
    assert issuer.jwks_requests == 1  # within the interval: no refetch
    await asyncio.sleep(0.5)
    assert await verifier.verify(issuer.token()) == "alice"
    await eventually(lambda: issuer.jwks_requests == 2)


async def test_the_cache_lifetime_caps_a_longer_max_age(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.jwks_max_age = 3600 * 24
    verifier = await make_verifier(cache_lifetime_s=0.2, refresh_interval_s=0.1)
    await verifier.start()
    await asyncio.sleep(0.3)
    assert await verifier.verify(issuer.token()) == "alice"
    await eventually(lambda: issuer.jwks_requests == 2)


# -- the issuer unavailable ---------------------------------------------------------------

FAULTS: list[Fault] = ["unavailable", "disconnect", "bad_json", "slow"]


@pytest.mark.parametrize("endpoint", ["discovery", "jwks"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_no_keys_yet_and_the_issuer_failing_is_unavailable_not_invalid(
    issuer: OidcIssuer, make_verifier: MakeVerifier, endpoint: str, fault: Fault
) -> None:
    setattr(issuer, f"{endpoint}_fault", fault)
    verifier = await make_verifier(timeout_s=0.3, retry_interval_s=2.5)
    with pytest.raises(IssuerUnavailable) as unavailable:
        await verifier.verify(issuer.token())
    assert unavailable.value.retry_after == 3  # whole seconds, rounded up
    assert issuer.url in str(unavailable.value)


async def test_a_down_issuer_is_asked_again_only_after_the_retry_interval(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.go_down()
    verifier = await make_verifier(retry_interval_s=0.8)
    with pytest.raises(IssuerUnavailable):
        await verifier.verify(issuer.token())
    asked = issuer.discovery_requests
    issuer.come_back()
    with pytest.raises(IssuerUnavailable) as unavailable:  # backing off: nothing sent
        await verifier.verify(issuer.token())
    assert unavailable.value.retry_after == 1
    assert issuer.discovery_requests == asked
    await asyncio.sleep(0.9)
    assert await verifier.verify(issuer.token()) == "alice"


async def test_a_discovery_naming_another_issuer_is_not_trusted(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.advertised_issuer = "https://accounts.example"
    verifier = await make_verifier()
    token = issuer.token({"iss": issuer.url})
    with (
        caplog.at_level(logging.WARNING, "chat_service.identity.oidc"),
        pytest.raises(IssuerUnavailable),
    ):
        await verifier.verify(token)
    assert issuer.jwks_requests == 0
    assert "different issuer" in caplog.text


async def test_an_empty_key_set_counts_as_a_failed_fetch(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    for key in issuer.published:
        issuer.remove_key(key.kid)
    issuer.extra_jwks = [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]
    verifier = await make_verifier()
    with pytest.raises(IssuerUnavailable):
        await verifier.verify(issuer.token())


async def test_start_survives_a_down_issuer(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.go_down("disconnect")
    verifier = await make_verifier(retry_interval_s=0.1)
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        await verifier.start()
    assert verifier.keys == ()
    assert issuer.url in caplog.text
    issuer.come_back()
    await asyncio.sleep(0.15)
    assert await verifier.verify(issuer.token()) == "alice"


async def test_with_keys_cached_a_failed_refresh_refuses_only_the_unknown_kid(
    issuer: OidcIssuer, make_verifier: MakeVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = await make_verifier()
    await verifier.start()
    issuer.go_down()
    unknown = issuer.token(key=rsa_key("ghost"))
    with caplog.at_level(logging.WARNING, "chat_service.identity.oidc"):
        assert await reason(verifier, unknown) == "unknown signing key"
    assert issuer.jwks_requests == 2
    assert "keeping the cached keys" in caplog.text
    assert unknown not in caplog.text
    assert unknown.split(".")[2] not in caplog.text
    assert await verifier.verify(issuer.token()) == "alice"  # cached keys still work


async def test_stale_keys_keep_working_while_the_issuer_is_down(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = await make_verifier(cache_lifetime_s=0.1, refresh_interval_s=0.1)
    await verifier.start()
    issuer.go_down()
    await asyncio.sleep(0.2)
    assert await verifier.verify(issuer.token()) == "alice"
    await eventually(lambda: issuer.jwks_requests == 2)  # the background refresh was tried
    assert await verifier.verify(issuer.token()) == "alice"


async def test_close_ends_a_fetch_under_way(
    issuer: OidcIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.jwks_fault = "slow"
    verifier = await make_verifier()
    pending = asyncio.create_task(verifier.verify(issuer.token()))
    await eventually(lambda: issuer.jwks_requests == 1)
    await asyncio.wait_for(verifier.close(), 2)
    with pytest.raises(IssuerUnavailable):  # no keys came: not the token's fault
        await pending

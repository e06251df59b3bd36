"""OpenID Connect bearer tokens: a JWT's signature checked against the issuer's published keys,
and its claims against the configured issuer and audience; the caller is the token's ``sub``.

The keys come from the issuer itself: ``{issuer}/.well-known/openid-configuration`` names the
``jwks_uri``, whose key set is cached (an hour, or the response's ``Cache-Control: max-age``)
and refetched when a token names a key id we do not know, which is how issuers announce a
rotation. Both fetches are asynchronous (aiohttp), never a blocking call on the event loop.

Guarding against the known attacks on JWT verification:

- Only asymmetric algorithms are accepted; ``none`` and every HMAC algorithm are refused
  before any key is looked at, and the algorithms handed to PyJWT are those of the selected
  key's own type, so a public RSA key can never be used as an HMAC secret.
- A token cannot make us hammer the issuer: refreshes for unknown key ids are rate-limited,
  failed fetches back off, and concurrent callers share one fetch.
- Published private keys, symmetric keys and RSA keys under 2,048 bits are refused.

Two outcomes besides a subject: ``InvalidToken`` (the caller's fault: 401, its ``reason`` is
safe to show) and ``IssuerUnavailable`` (no keys could ever be fetched: the token may be fine,
so 503 with ``retry_after``). Tokens are never logged; failures are logged as the issuer's URL
and the kind of failure.

Whether the issuer can be used at all is ``problem`` (why no token can be verified, or None),
which ``probe`` brings up to date within the same back-off as tokens: what the service says at
start-up and what its readiness probe answers, since a misconfigured issuer otherwise shows
only as every token answered 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from jwt.exceptions import InvalidSubjectError
from yarl import URL

log = logging.getLogger(__name__)

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
ALLOWED_ALGORITHMS = _RSA_ALGORITHMS | frozenset(_EC_ALGORITHMS.values()) | {"EdDSA"}
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
# Lone surrogates too (a JSON escape such as "\ud800" makes one): not text, as they cannot be
# encoded as UTF-8, and the store, the logs and the spans all would encode the subject.
_SUBJECT = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,255}")
# The longest issuer name a discovery document is quoted with in ``problem``: enough for any
# real URL, and a hostile document cannot fill every log line and probe answer.
_MAX_ISSUER_SHOWN = 500
# The claims a person's name is read from, in order (OpenID Connect Core 5.1); shown to that
# person by the page (GET /chat/me), never logged.
DISPLAY_NAME_CLAIMS = ("name", "preferred_username", "email")
_MAX_DISPLAY_NAME = 200
# Control, format (bidirectional overrides), surrogate and private-use characters: nothing a
# name needs, and what would let one disguise itself.
_NOT_IN_NAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff\ue000-\uf8ff]"
)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a valid token says of its bearer: the subject (who owns the conversations) and,
    when the token carries one, a name to show them (``display_name``)."""

    subject: str
    display_name: str | None = None


def display_name(claims: Mapping[str, Any]) -> str | None:
    """The first of ``DISPLAY_NAME_CLAIMS`` that holds a name once characters no name needs
    are removed, cut to 200 characters; None when none does."""
    for claim in DISPLAY_NAME_CLAIMS:
        value = claims.get(claim)
        if not isinstance(value, str):
            continue
        # Whitespace (line breaks, tabs) separates words; what else no name needs goes.
        words = _NOT_IN_NAMES.sub("", " ".join(value.split())).split()
        name = " ".join(words)[:_MAX_DISPLAY_NAME].strip()
        if name:
            return name
    return None


class InvalidToken(Exception):
    """The token is not acceptable; ``reason`` is short, names no secret, and may be shown to
    the client (``error_description``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailable(Exception):
    """No signing keys could be fetched from the issuer yet, so no token can be judged.

    Not the caller's fault: answer 503 with ``Retry-After: retry_after`` (whole seconds, at
    least 1), the time until this verifier will ask the issuer again.
    """

    def __init__(self, issuer: str, retry_after_s: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"the signing keys of OpenID Connect issuer {issuer} are unavailable; "
            f"retry in {self.retry_after} s"
        )


class _FetchFailed(Exception):
    """Discovery or the key set could not be fetched; the message is the kind of failure."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One usable key of the issuer's set: its id, the public key, and the algorithms it may
    verify (a subset of ``ALLOWED_ALGORITHMS`` fixed by its type, curve and ``alg``)."""

    kid: str | None
    key: Any  # a `cryptography` public key, as PyJWT builds it from the JWK
    algorithms: frozenset[str]


def signing_keys(jwks: Mapping[str, Any]) -> tuple[SigningKey, ...]:
    """The keys of a JWK set that may verify tokens; every other key is skipped (logged at
    debug level), since issuers also publish encryption keys and types PyJWT lacks."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        return ()
    keys: list[SigningKey] = []
    for entry in entries:
        key = _signing_key(entry)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _signing_key(jwk_data: object) -> SigningKey | None:
    if not isinstance(jwk_data, dict):
        return None
    kid = jwk_data.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    if jwk_data.get("use", "sig") != "sig":
        return None
    operations = jwk_data.get("key_ops")
    if isinstance(operations, list) and "verify" not in operations:
        return None
    if "d" in jwk_data:
        # A private key in a public document: anyone could sign with it.
        log.warning("OIDC key set publishes private key material (kid %r); key ignored", kid)
        return None
    algorithms = _algorithms_for(jwk_data)
    if not algorithms:
        log.debug("OIDC key %r skipped: no allowed algorithm for its type", kid)
        return None
    try:
        parsed = jwt.PyJWK(jwk_data, algorithm=min(algorithms))
        too_short = parsed.Algorithm.check_key_length(parsed.key)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        log.debug("OIDC key %r skipped: PyJWT cannot use it", kid)
        return None
    if too_short:
        log.warning("OIDC key %r ignored: %s", kid, too_short)
        return None
    return SigningKey(kid, parsed.key, algorithms)


def _algorithms_for(jwk_data: Mapping[str, Any]) -> frozenset[str]:
    """The allowed algorithms this key's type (and curve) can verify, narrowed to its own
    ``alg`` when it declares one."""
    kty, curve = jwk_data.get("kty"), jwk_data.get("crv")
    if kty == "RSA":
        family = _RSA_ALGORITHMS
    elif kty == "EC" and isinstance(curve, str) and curve in _EC_ALGORITHMS:
        family = frozenset({_EC_ALGORITHMS[curve]})
    elif kty == "OKP" and isinstance(curve, str) and curve in _OKP_CURVES:
        family = frozenset({"EdDSA"})
    else:
        return frozenset()
    declared = jwk_data.get("alg")
    if declared is None:
        return family
    return family & {declared} if isinstance(declared, str) else frozenset()


def jwks_uri_allowed(issuer: str, jwks_uri: str) -> bool:
    """Whether discovery's ``jwks_uri`` may be fetched for ``issuer``: an absolute URL with a
    host, over HTTPS; plain HTTP only for an issuer that is itself plain HTTP (a local one,
    which the configuration allows), so never a downgrade from the issuer's TLS."""
    schemes = {"https"} if URL(issuer).scheme == "https" else {"https", "http"}
    try:
        target = URL(jwks_uri)
    except ValueError:  # not a URL yarl can parse: an unclosed IPv6 bracket, a port > 65535
        return False
    return target.scheme in schemes and bool(target.host)


def _issuer_mismatch(named: object) -> str:
    """Why a discovery document naming ``named`` as its issuer is not trusted, told so that
    whoever configured the issuer can correct it: the name quoted and escaped (``!r``: a
    trailing slash or a space shows, and a line break or a lone surrogate cannot break the
    log line or the probe's JSON)."""
    if not isinstance(named, str) or not named:
        return "its discovery document names no issuer"
    if len(named) > _MAX_ISSUER_SHOWN:
        return f"its discovery document names another issuer, {len(named)} characters long"
    return (
        f"it names itself {named!r} in its discovery document; set CHAT_OIDC_ISSUER to exactly that"
    )


def _cache_max_age(cache_control: str | None) -> float | None:
    match = _MAX_AGE.search(cache_control or "")
    return float(match.group(1)) if match else None


class OidcVerifier:
    """Verifies bearer tokens of one issuer for one audience; one instance per application,
    shared by all requests (it caches the issuer's keys)."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        leeway_s: float = 30.0,
        refresh_interval_s: float = 60.0,
        retry_interval_s: float = 5.0,
        cache_lifetime_s: float = 3600.0,
        timeout_s: float = 5.0,
        max_document_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``leeway_s``: clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        ``refresh_interval_s``: the least time between two refreshes caused by unknown key ids.
        ``retry_interval_s``: after a failed fetch, the time before the issuer is asked again.
        ``cache_lifetime_s``: the longest a fetched key set is used before being refetched (in
        the background; the old keys keep working meanwhile), shortened by ``max-age``.
        ``timeout_s``: each HTTP request to the issuer, whole.
        ``max_document_bytes``: the largest discovery document or key set read.
        ``clock``: the monotonic seconds the three intervals above are measured on (tests
        pass a clock they move, so no test waits for an interval to pass)."""
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.refresh_interval_s = refresh_interval_s
        self.retry_interval_s = retry_interval_s
        self.cache_lifetime_s = cache_lifetime_s
        self.timeout_s = timeout_s
        self.max_document_bytes = max_document_bytes
        self._clock = clock
        self._discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._session: aiohttp.ClientSession | None = None
        self._jwks_uri: str | None = None
        self._keys: tuple[SigningKey, ...] | None = None
        self._expires_at = 0.0  # clock: when the cached keys are due for a refetch
        self._retry_at = 0.0  # clock: before this, a failed fetch is not retried
        self._next_kid_refresh_at = 0.0  # clock: the unknown-kid refresh rate limit
        self._inflight: asyncio.Task[tuple[SigningKey, ...] | None] | None = None
        self._failure = "its keys have not been fetched yet"  # the last failed fetch's

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """The signing keys currently cached (empty before the first successful fetch)."""
        return self._keys or ()

    @property
    def problem(self) -> str | None:
        """Why no token can be verified now, as one sentence naming the issuer; None once
        keys are cached. Cached keys go on verifying while the issuer is down, so an outage
        after the first fetch is no problem (the service stays ready, rather than all its
        replicas leaving at once); before, it is the last fetch's failure."""
        if self._keys is not None:
            return None
        return f"OpenID Connect issuer {self.issuer} is not usable: {self._failure}"

    async def probe(self) -> str | None:
        """``problem``, brought up to date as a token would: without keys, they are fetched
        if the back-off allows (a fetch under way is joined), so a readiness probe asked
        however often costs the issuer no more than tokens do, one fetch per retry interval
        while it fails. With keys cached, None at once (a refetch that is due starts in the
        background, as for a token)."""
        try:
            await self._current_keys()
        except IssuerUnavailable:
            return self.problem
        return None

    async def start(self) -> None:
        """Fetch the keys ahead of the first request. An issuer that is down does not stop
        start-up: requests and probes will retry (tokens are answered 503 meanwhile). The
        fetch logs nothing: whoever starts the verifier tells its outcome, ``problem``, in
        one line (the fetch's own line would say the same twice)."""
        await self._refresh(quiet=True)

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def verify(self, token: str) -> VerifiedToken:
        """The token's subject (``sub``) and display name, once its signature, issuer,
        audience and times have been checked. Raises ``InvalidToken`` or
        ``IssuerUnavailable``."""
        try:
            header = jwt.get_unverified_header(token)
        # ValueError: aiohttp keeps undecodable header bytes as surrogates, which PyJWT
        # cannot encode back.
        except (jwt.PyJWTError, ValueError):
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        key = await self._key_for(header.get("kid"), algorithm)
        claims = self._decode(token, key)
        subject = claims.get("sub")
        # OpenID Connect: at most 255 characters. Control characters (NUL above all) have no
        # place in a principal's name, which keys its conversations in the store, and a lone
        # surrogate is no name at all (_SUBJECT).
        if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
            raise InvalidToken("invalid subject")
        return VerifiedToken(subject, display_name(claims))

    def _decode(self, token: str, key: SigningKey) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                # The key's own algorithms (already within the allow-list), so the header
                # cannot pick an algorithm family the key was not made for.
                algorithms=sorted(key.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.MissingRequiredClaimError as missing:
            raise InvalidToken(f"missing {missing.claim} claim") from None
        except InvalidSubjectError:
            raise InvalidToken("invalid subject") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
            raise InvalidToken("algorithm does not match key") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        return claims

    async def _key_for(self, kid: object, algorithm: str) -> SigningKey:
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token")
        keys = await self._current_keys()
        candidates: tuple[SigningKey, ...]
        if kid is None:
            # Without a key id the choice would be a guess, unless there is nothing to choose.
            if len(keys) != 1:
                raise InvalidToken("missing key id")
            candidates = keys
        else:
            candidates = tuple(key for key in keys if key.kid == kid)
            if not candidates and self._may_refresh_for_unknown_kid():
                refreshed = await self._refresh(unknown_kid=True)
                candidates = tuple(key for key in refreshed or () if key.kid == kid)
            if not candidates:
                raise InvalidToken("unknown signing key")
        for key in candidates:
            if algorithm in key.algorithms:
                return key
        raise InvalidToken("algorithm does not match key")

    async def _current_keys(self) -> tuple[SigningKey, ...]:
        """The cached keys, fetching them first if there are none; stale keys are used while
        a background refresh replaces them."""
        now = self._clock()
        if self._keys is None:
            if self._inflight is None and now < self._retry_at:
                raise IssuerUnavailable(self.issuer, self._retry_at - now)
            keys = await self._refresh()
            if keys is None:
                raise IssuerUnavailable(self.issuer, self.retry_interval_s)
            return keys
        if now >= self._expires_at and now >= self._retry_at and self._inflight is None:
            self._start_refresh()
        return self._keys

    def _may_refresh_for_unknown_kid(self) -> bool:
        if self._inflight is not None:
            return True  # joining a fetch already under way costs the issuer nothing
        now = self._clock()
        return now >= self._next_kid_refresh_at and now >= self._retry_at

    async def _refresh(
        self, *, unknown_kid: bool = False, quiet: bool = False
    ) -> tuple[SigningKey, ...] | None:
        """Single flight: the fresh keys, or None when the fetch failed (already logged,
        unless the fetch this starts is ``quiet``)."""
        if self._inflight is None:
            if unknown_kid:
                self._next_kid_refresh_at = self._clock() + self.refresh_interval_s
            self._start_refresh(quiet=quiet)
        task = self._inflight
        assert task is not None
        # Shielded: one caller going away (its client disconnected) must not cancel the fetch
        # that every other caller is waiting for.
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                return None  # the fetch was ended by close(), not this caller: no keys
            raise

    def _start_refresh(self, *, quiet: bool = False) -> None:
        task = asyncio.create_task(self._fetch_keys(quiet=quiet), name="oidc-jwks-refresh")
        self._inflight = task
        task.add_done_callback(self._refresh_done)

    def _refresh_done(self, task: asyncio.Task[tuple[SigningKey, ...] | None]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("OIDC key refresh for %s failed unexpectedly", self.issuer, exc_info=error)

    async def _fetch_keys(self, *, quiet: bool) -> tuple[SigningKey, ...] | None:
        try:
            return await self._fetch_keys_once(quiet=quiet)
        finally:
            # Over as the fetch ends, not a loop iteration later in _refresh_done: a token
            # checked in between would find a fetch "under way" and start none.
            if self._inflight is asyncio.current_task():
                self._inflight = None

    async def _fetch_keys_once(self, *, quiet: bool) -> tuple[SigningKey, ...] | None:
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            try:
                jwks, max_age = await self._get_json(self._jwks_uri, "key set")
            except _FetchFailed:
                self._jwks_uri = None  # it may have moved: ask discovery again next time
                raise
            keys = signing_keys(jwks)
            if not keys:
                raise _FetchFailed("key set has no usable signing key")
        except _FetchFailed as failure:
            self._retry_at = self._clock() + self.retry_interval_s
            self._failure = str(failure)
            if not quiet:
                kept = "keeping the cached keys" if self._keys else "no keys yet"
                log.warning("OIDC issuer %s: keys not fetched: %s; %s", self.issuer, failure, kept)
            return None
        lifetime = min(self.cache_lifetime_s, max_age if max_age is not None else math.inf)
        self._expires_at = self._clock() + max(lifetime, self.refresh_interval_s)
        self._keys = keys
        if not quiet:
            log.info("OIDC issuer %s: %d signing keys fetched", self.issuer, len(keys))
        return keys

    async def _discover(self) -> str:
        document, _ = await self._get_json(self._discovery_url, "discovery")
        # OpenID Connect Discovery 1.0 §4.3: the document must name exactly the issuer whose
        # URL served it, or tokens could be checked against another issuer's keys.
        if (named := document.get("issuer")) != self.issuer:
            raise _FetchFailed(_issuer_mismatch(named))
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchFailed("discovery has no jwks_uri")
        if not jwks_uri_allowed(self.issuer, jwks_uri):
            raise _FetchFailed("discovery's jwks_uri is not an absolute https URL")
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> tuple[dict[str, Any], float | None]:
        """The JSON object at ``url`` and the response's ``max-age``, if any."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"Accept": "application/json"},
            )
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise _FetchFailed(f"{what} answered HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self.max_document_bytes:
                        raise _FetchFailed(f"{what} exceeds {self.max_document_bytes} bytes")
                max_age = _cache_max_age(response.headers.get("Cache-Control"))
        except TimeoutError:
            raise _FetchFailed(f"{what} timed out after {self.timeout_s:g} s") from None
        except aiohttp.ClientError as error:
            raise _FetchFailed(f"{what}: {type(error).__name__}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise _FetchFailed(f"{what} is not JSON") from None
        if not isinstance(document, dict):
            raise _FetchFailed(f"{what} is not a JSON object")
        return document, max_age

"""A real OpenID Connect issuer for the tests: discovery and a key set over HTTP, and tokens
signed with its keys.

``OidcIssuer`` is an aiohttp server on a free 127.0.0.1 port, running its own event loop in a
background thread, so sync tests (around the real service process) and async tests (around
``OidcVerifier`` in process) use it alike::

    with OidcIssuer(audience="chat-service") as issuer:
        token = issuer.token({"sub": "bob"})

It serves ``/.well-known/openid-configuration`` and ``/jwks.json`` for the keys it publishes
(one RSA 2048 and one EC P-256 key to begin with; EC P-384/P-521 and EdDSA keys on Ed25519 and
Ed448 can be added), counts the requests to each, and can be made to misbehave per endpoint:
answer 503, drop the connection, send bad JSON, or answer too slowly. Keys are added, rotated
and withdrawn while it runs; the key set can be held back until released (to make fetches
overlap without a timed wait), padded to an exact size, and discovery can name another
``jwks_uri``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

Fault = Literal["unavailable", "disconnect", "bad_json", "slow"]
SLOW_S = 30.0  # a "slow" answer: longer than any client timeout a test sets
# Generated kids ("rsa-k1", "ec-k2", ...) can never be the issuer's own ("rsa-1", "ec-1"): a
# test that happened to make the first key of the process would otherwise replace the
# issuer's default key instead of adding one, and fail or pass depending on the test order.
_kids = itertools.count(1)

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
OkpCurve = Literal["Ed25519", "Ed448"]
EcCurve = Literal["P-256", "P-384", "P-521"]
_EC_CURVES: dict[EcCurve, tuple[ec.EllipticCurve, str]] = {
    "P-256": (ec.SECP256R1(), "ES256"),
    "P-384": (ec.SECP384R1(), "ES384"),
    "P-521": (ec.SECP521R1(), "ES512"),
}


def _jwk(key: PrivateKey | PublicKey) -> dict[str, Any]:
    """The key as a JWK, by PyJWT's exporter for its type (private material included if
    ``key`` is private)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    return OKPAlgorithm.to_jwk(key, as_dict=True)


@dataclass(frozen=True)
class IssuerKey:
    """A signing key pair. ``declare_alg``: whether the published JWK names its ``alg``
    (without it, an RSA key may verify any RS*/PS* algorithm); ``declare_use``: whether it
    names ``use: sig`` (optional in a JWK, and left out by some issuers)."""

    kid: str
    private_key: PrivateKey
    algorithm: str
    declare_alg: bool = True
    declare_use: bool = True

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk = _jwk(self.private_key.public_key())
        jwk["kid"] = self.kid
        if self.declare_use:
            jwk["use"] = "sig"
        if self.declare_alg:
            jwk["alg"] = self.algorithm
        return jwk

    @property
    def private_jwk(self) -> dict[str, Any]:
        """The whole key pair as a JWK, as an issuer must never publish it (without PyJWT's
        ``key_ops: ["sign"]``, which a careless issuer would not add either)."""
        jwk = _jwk(self.private_key)
        jwk.pop("key_ops", None)
        return {**jwk, **self.public_jwk, "d": jwk["d"]}

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(
    kid: str | None = None,
    *,
    bits: int = 2048,
    algorithm: str = "RS256",
    declare_alg: bool = True,
    declare_use: bool = True,
) -> IssuerKey:
    """A new RSA key; not published until given to ``OidcIssuer.add_key``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return IssuerKey(kid or f"rsa-k{next(_kids)}", private, algorithm, declare_alg, declare_use)


def ec_key(
    kid: str | None = None, *, curve: EcCurve = "P-256", declare_alg: bool = True
) -> IssuerKey:
    """A new EC key (P-256: ES256, P-384: ES384, P-521: ES512); not published until given to
    ``OidcIssuer.add_key``."""
    ec_curve, algorithm = _EC_CURVES[curve]
    private = ec.generate_private_key(ec_curve)
    return IssuerKey(kid or f"ec-k{next(_kids)}", private, algorithm, declare_alg)


def okp_key(
    kid: str | None = None, *, curve: OkpCurve = "Ed25519", declare_alg: bool = True
) -> IssuerKey:
    """A new EdDSA key (an OKP JWK) on Ed25519 or Ed448; not published until given to
    ``OidcIssuer.add_key``."""
    private: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if curve == "Ed25519"
        else ed448.Ed448PrivateKey.generate()
    )
    return IssuerKey(kid or f"{curve.lower()}-k{next(_kids)}", private, "EdDSA", declare_alg)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(
    header: dict[str, Any],
    claims: dict[str, Any],
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """A compact JWS built without PyJWT, which refuses to make the forgeries tests need
    (``alg: none``, an HMAC keyed with a public key): ``sign`` gets the signing input and
    returns the signature (none: an empty signature)."""
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = sign(signing_input.encode()) if sign is not None else b""
    return f"{signing_input}.{_b64(signature)}"


class OidcIssuer:
    """The issuer at ``url``; start with ``start()``/``stop()`` or as a context manager."""

    def __init__(
        self,
        audience: str = "chat-service",
        *,
        subject: str = "alice",
        path: str = "",
        port: int = 0,
    ) -> None:
        """``path``: the issuer's path on its host (as a Keycloak realm's ``/realms/name``),
        no trailing slash; its endpoints are served under it. ``port``: where to listen
        (0: a free port), for an issuer that comes up where a service already looks for it."""
        self.audience = audience
        self.subject = subject
        self.path = path
        self._bind_port = port
        self.port = 0
        # Faults per endpoint (None: answer normally); ``go_down``/``come_back`` set both.
        self.discovery_fault: Fault | None = None
        self.jwks_fault: Fault | None = None
        # What discovery claims as the issuer (None: ``url``), to test a mismatch.
        self.advertised_issuer: str | None = None
        # What discovery names as the key set's URL (None: this issuer's /jwks.json).
        self.advertised_jwks_uri: str | None = None
        # Members replacing or added to discovery's (None as a value: the member left out).
        self.discovery_overrides: dict[str, Any] = {}
        self.jwks_cache_control: str | None = None  # the key set's Cache-Control header
        # The key set's exact size in bytes, reached with trailing spaces (which JSON allows).
        self.jwks_size: int | None = None
        self.extra_jwks: list[dict[str, Any]] = []  # raw entries published after the keys
        self.jwks_body: bytes | None = None  # served as the key set instead of the keys
        # Cleared by ``hold_jwks``: key set requests are counted, then wait for ``release_jwks``.
        # Set and cleared on the issuer's loop only (``_on_loop``).
        self._jwks_open = asyncio.Event()
        self._jwks_open.set()
        self.discovery_requests = 0
        self.jwks_requests = 0
        self.accept_headers: list[str | None] = []  # each request's Accept, in order
        self._lock = threading.Lock()
        self._published: dict[str, IssuerKey] = {}
        self.default_key = self.add_key(rsa_key("rsa-1"))
        self.add_key(ec_key("ec-1"))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The issuer identifier: ``http://127.0.0.1:<port><path>``, no trailing slash."""
        if not self.port:
            raise RuntimeError("the issuer is not started")
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def issuer(self) -> str:
        """What discovery names as the issuer (and the default ``iss`` of tokens)."""
        return self.advertised_issuer or self.url

    # -- keys -----------------------------------------------------------------------------

    @property
    def published(self) -> list[IssuerKey]:
        with self._lock:
            return list(self._published.values())

    def add_key(self, key: IssuerKey, *, default: bool = False) -> IssuerKey:
        """Publish ``key`` in the key set; ``default``: sign tokens with it from now on.

        A kid already published is refused rather than replaced: two keys under one kid is
        a mistake of the test, which would otherwise see a "bad signature" it did not mean."""
        with self._lock:
            if key.kid in self._published:
                raise ValueError(f"kid {key.kid!r} is already published")
            self._published[key.kid] = key
        if default:
            self.default_key = key
        return key

    def remove_key(self, kid: str) -> None:
        with self._lock:
            del self._published[kid]

    def rotate(self) -> IssuerKey:
        """A new RSA key, published and signing from now on; the old ones stay published
        (as issuers keep them until their tokens expire) until ``remove_key``."""
        return self.add_key(rsa_key(), default=True)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in self.published] + self.extra_jwks}

    # -- tokens ---------------------------------------------------------------------------

    def claims(
        self, overrides: dict[str, Any] | None = None, omit: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A token's claims: ``iss``, ``aud``, ``sub``, ``iat``/``nbf`` now and ``exp`` in
        five minutes, then ``overrides``, less the claims named in ``omit``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **(overrides or {}),
        }
        for name in omit:
            claims.pop(name, None)
        return claims

    def token(
        self,
        overrides: dict[str, Any] | None = None,
        *,
        key: IssuerKey | None = None,
        kid: str | None = None,
        omit_kid: bool = False,
        algorithm: str | None = None,
        headers: dict[str, Any] | None = None,
        omit: Iterable[str] = (),
    ) -> str:
        """A token signed with ``key`` (default: ``default_key``, published or not) using
        ``algorithm`` (default: the key's), its header naming ``kid`` (default: the key's;
        ``omit_kid``: none) plus ``headers``; claims as ``claims(overrides, omit)``."""
        key = key or self.default_key
        header: dict[str, Any] = {} if omit_kid else {"kid": kid or key.kid}
        header.update(headers or {})
        return jwt.encode(
            self.claims(overrides, omit),
            key.private_key,
            algorithm=algorithm or key.algorithm,
            headers=header,
        )

    # -- faults ---------------------------------------------------------------------------

    def hold_jwks(self) -> None:
        """Key set requests from now on are counted but not answered until ``release_jwks``:
        fetches are made to overlap by the issuer waiting, not by the test sleeping."""
        self._on_loop(self._jwks_open.clear)

    def release_jwks(self) -> None:
        self._on_loop(self._jwks_open.set)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the issuer's loop and wait until it has run, so what it changes
        holds for every request sent after this returns."""
        if self._loop is None:
            raise RuntimeError("the issuer is not started")

        async def call() -> None:
            callback()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def go_down(self, fault: Fault = "unavailable") -> None:
        self.discovery_fault = self.jwks_fault = fault

    def come_back(self) -> None:
        self.discovery_fault = self.jwks_fault = None

    # -- the server -----------------------------------------------------------------------

    async def _misbehave(self, request: web.Request, fault: Fault | None) -> web.Response | None:
        if fault == "unavailable":
            return web.json_response({"error": "down"}, status=503)
        if fault == "disconnect":
            assert request.transport is not None
            request.transport.abort()  # no status line: the client sees the connection drop
            return web.Response()
        if fault == "bad_json":
            return web.Response(text="{not json", content_type="application/json")
        if fault == "slow":
            await asyncio.sleep(SLOW_S)
        return None

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_requests += 1
        self.accept_headers.append(request.headers.get("Accept"))
        if (failed := await self._misbehave(request, self.discovery_fault)) is not None:
            return failed
        document = {
            "issuer": self.issuer,
            "jwks_uri": self.advertised_jwks_uri or f"{self.url}/jwks.json",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }
        for name, value in self.discovery_overrides.items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return web.json_response(document)

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        self.accept_headers.append(request.headers.get("Accept"))
        await self._jwks_open.wait()
        if (failed := await self._misbehave(request, self.jwks_fault)) is not None:
            return failed
        headers = {}
        if self.jwks_cache_control is not None:
            headers["Cache-Control"] = self.jwks_cache_control
        body = json.dumps(self.jwks()).encode() if self.jwks_body is None else self.jwks_body
        if self.jwks_size is not None:
            if len(body) > self.jwks_size:
                raise RuntimeError(f"the key set is already {len(body)} bytes")
            body += b" " * (self.jwks_size - len(body))
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get(f"{self.path}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{self.path}/jwks.json", self._jwks)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._bind_port).start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still sleeping (a "slow" fault) are cancelled, not abandoned.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def start(self) -> OidcIssuer:
        if self._thread is not None:
            raise RuntimeError("the issuer is already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

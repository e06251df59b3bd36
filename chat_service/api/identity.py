"""Who is calling, established once per request, and what a caller must present.

``identify`` runs first on the mounts that need a caller (the ``/chat`` application, and
``/metrics`` when CHAT_METRICS_REQUIRE_KEY is true: api/__init__.py): it works out the
client's address (through a trusted proxy, see :func:`client_address`) and, when API keys
or an OpenID Connect issuer are configured, checks the bearer credential once, recording
either the caller's :class:`Principal` (``request[PRINCIPAL]``) or why it was refused. Rate
limiting (ratelimit.py) then counts the caller, and ``require_identity`` refuses the
unidentified, so a flood of bad credentials is throttled before it costs a refusal each.
Logs, spans and handlers read ``request[PRINCIPAL]``; nothing below checks a credential
again, and handlers reach conversations only through :func:`callers_conversation`.

With neither keys nor an issuer configured, everyone is the anonymous principal.
Probes, ``/openapi.json`` and the page are mounted without it; ``/metrics`` only opens to an
API key when it is protected.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import trace

from chat_service.api.errors import ApiError
from chat_service.chat.domain import ConversationRef
from chat_service.identity.api_keys import ApiKeys
from chat_service.identity.oidc import InvalidToken, IssuerUnavailable, OidcVerifier
from chat_service.identity.principal import ANONYMOUS, Principal, PrincipalKind

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PRINCIPAL = web.RequestKey("principal", Principal)
CLIENT_ADDRESS = web.RequestKey("client_address", str)
REFUSAL = web.RequestKey("identity_refusal", ApiError)

REALM = 'Bearer realm="chat-service"'


@dataclass(frozen=True)
class Identity:
    """How callers prove who they are; with nothing configured, nobody has to."""

    keys: ApiKeys
    oidc: OidcVerifier | None = None
    trusted_proxies: tuple[IpNetwork, ...] = ()

    @property
    def required(self) -> bool:
        return bool(self.keys) or self.oidc is not None

    async def principal(self, request: web.Request, *, tokens: bool = True) -> Principal:
        """The caller behind the request's bearer credential; ApiError (401, 503) if none.
        ``tokens=False``: API keys only (``/metrics``), not OpenID Connect users."""
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, self._missing_message(), headers={hdrs.WWW_AUTHENTICATE: REALM})
        if (principal := self.keys.identify(token)) is not None:
            return principal
        if self.oidc is None or not tokens:
            raise _invalid_token("A valid API key is required.")
        try:
            verified = await self.oidc.verify(token)
        except InvalidToken as exc:
            raise _invalid_token(f"The bearer token is not valid: {exc.reason}.") from None
        except IssuerUnavailable as exc:
            raise ApiError(
                503,
                "Bearer tokens cannot be verified right now; try again shortly.",
                headers={hdrs.RETRY_AFTER: str(exc.retry_after)},
            ) from None
        return Principal(PrincipalKind.OIDC, verified.subject, verified.display_name)

    def _missing_message(self) -> str:
        if self.oidc is None:
            return "A valid API key is required."
        if not self.keys:
            return "A bearer token is required."
        return "A valid API key or bearer token is required."


def owner(request: web.Request) -> str:
    """The caller's namespace: what owns the conversations it creates and lists."""
    return request[PRINCIPAL].namespace


def callers_conversation(request: web.Request, conversation_id: str) -> ConversationRef:
    """The caller's conversation ``conversation_id``: every handler reaches a conversation
    through this, so no caller can name another's."""
    return ConversationRef(request[PRINCIPAL].namespace, conversation_id)


def _invalid_token(message: str) -> ApiError:
    # RFC 6750 section 3: error="invalid_token" tells the client to get a new credential.
    challenge = f'{REALM}, error="invalid_token"'
    return ApiError(401, message, headers={hdrs.WWW_AUTHENTICATE: challenge})


def parse_networks(values: Sequence[str]) -> tuple[IpNetwork, ...]:
    """CIDRs or bare addresses; raises ValueError on anything else."""
    return tuple(
        ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()
    )


def client_address(request: web.Request, trusted: tuple[IpNetwork, ...]) -> str:
    """The peer; when the peer is a trusted proxy, the address that proxy saw.

    A proxy vouches only for the entry it appended itself, the last one of X-Forwarded-For
    (NGINX's ``$proxy_add_x_forwarded_for``); everything left of it was written by the
    client. One hop, as NGINX's ``real_ip_recursive off``: a client on a private network
    behind the proxy is still told apart, and cannot borrow an identity.
    """
    peer = request.remote or "unknown"
    if not trusted or not is_trusted(peer, trusted):
        return peer
    forwarded = request.headers.getall(hdrs.X_FORWARDED_FOR, [])
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    if not hops:
        return peer
    try:
        return str(ipaddress.ip_address(hops[-1]))
    except ValueError:
        return peer  # not an address: ignore the header rather than trust a made-up name


# Every request and every connection asks about its peer, and parsing the address is most
# of the answer's cost (2.3 us against 0.3 us for a remembered one, measured here); the peers
# of a deployment are few (its proxies), and a flood of new ones only evicts old verdicts.
@functools.lru_cache(maxsize=4096)
def is_trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    """Whether ``address`` is in one of the ``trusted`` networks (False if not an address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def identify_middleware(identity: Identity, *, tokens: bool = True) -> Middleware:
    """Name the caller of every request of the mount it is on (``tokens``: as for
    :meth:`Identity.principal`)."""

    @web.middleware
    async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CLIENT_ADDRESS] = client_address(request, identity.trusted_proxies)
        if not identity.required:
            request[PRINCIPAL] = ANONYMOUS
        else:
            try:
                principal = await identity.principal(request, tokens=tokens)
            except ApiError as refusal:
                request[REFUSAL] = refusal
            else:
                request[PRINCIPAL] = principal
                if principal is not ANONYMOUS:
                    trace.get_current_span().set_attribute("enduser.id", principal.namespace)
        return await handler(request)

    return identify


@web.middleware
async def require_identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse, after the rate limit counted it, a request ``identify`` could not place."""
    if (refusal := request.get(REFUSAL)) is not None:
        raise refusal
    return await handler(request)


def caller(request: web.Request) -> str:
    """Whom a request counts against for the limits callers share (rate, model slots,
    streams): its principal when it has one, otherwise its address, so anonymous callers are
    still told apart."""
    principal: Principal = request.get(PRINCIPAL, ANONYMOUS)
    if principal is ANONYMOUS:
        return "ip:" + request[CLIENT_ADDRESS]
    return principal.namespace

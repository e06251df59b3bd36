"""API keys, optionally named: ``CHAT_API_KEYS=alice:<key>,ci-bot:<key>`` or bare keys.

A named key's principal is its name; an unnamed key is its own principal, known by a digest
prefix (``#`` cannot start a name, so the two never meet). Presented tokens are compared in
constant time against every key, so neither the match nor its position leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from chat_service.identity.principal import Principal, PrincipalKind

MIN_KEY_LENGTH = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    principal: Principal
    secret: bytes = field(repr=False)


def parse_api_key(entry: str) -> ApiKey:
    """``name:key`` or a bare ``key``; raises ValueError with a message that shows no secret.

    An entry is named when what precedes its first colon is a valid name, and then what
    follows must be a valid key; any other entry is one bare key (keys may hold colons)."""
    name, colon, rest = entry.partition(":")
    if colon and _NAME.fullmatch(name):
        if _valid_secret(rest):
            return ApiKey(Principal(PrincipalKind.API_KEY, name, name), rest.encode())
        # Read as a bare key it would be valid, but the name was surely meant as one.
        raise ValueError(
            f"the API key named {name!r} is too short or has spaces: keys must be at least "
            f"{MIN_KEY_LENGTH} printable characters without spaces"
        )
    if not _valid_secret(entry):
        raise ValueError(
            f"API keys must be at least {MIN_KEY_LENGTH} printable characters without spaces, "
            "optionally preceded by a name and a colon (name: 1-64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit)"
        )
    digest = hashlib.sha256(entry.encode()).hexdigest()[:16]
    return ApiKey(Principal(PrincipalKind.API_KEY, "#" + digest), entry.encode())


def _valid_secret(secret: str) -> bool:
    return len(secret) >= MIN_KEY_LENGTH and secret.isprintable() and " " not in secret


class ApiKeys:
    """The configured keys; answers whose key (if any) a presented token is."""

    def __init__(self, entries: Iterable[str]) -> None:
        keys = [parse_api_key(entry) for entry in entries]
        names = [key.principal.name for key in keys]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"API key names must be unique: {', '.join(duplicates)}")
        secrets = [key.secret for key in keys]
        if len(set(secrets)) != len(secrets):
            raise ValueError("the same API key is configured under two names")
        self._keys = keys

    def __bool__(self) -> bool:
        return bool(self._keys)

    def identify(self, token: str) -> Principal | None:
        # aiohttp keeps undecodable header bytes as surrogates: such a token matches no key.
        presented = token.encode("utf-8", "surrogateescape")
        match: Principal | None = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.secret):  # no early exit: same work either way
                match = key.principal
        return match

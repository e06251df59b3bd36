"""Who is calling: the principal every request is attributed to.

A principal owns conversations (its ``namespace`` qualifies their ids in the store), is the
unit a rate limit counts, and its ``name`` may appear in logs and spans. Secrets never do:
an unnamed API key is known by a digest prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PrincipalKind(StrEnum):
    ANONYMOUS = "anonymous"  # neither API keys nor an issuer are configured
    API_KEY = "key"
    OIDC = "oidc"  # the ``sub`` of a token from CHAT_OIDC_ISSUER


@dataclass(frozen=True, slots=True)
class Principal:
    """``name`` identifies (a key's name, a token's subject); ``display_name`` is what the
    page calls its user, when known (a token's name claims, a key's name). Two principals
    with the same kind and name are the same principal, whatever they are called."""

    kind: PrincipalKind
    name: str
    display_name: str | None = field(default=None, compare=False)

    @property
    def namespace(self) -> str:
        """What qualifies this principal's conversation ids: empty for the anonymous one,
        so a service without identity keeps the conversations it stored before."""
        if self.kind is PrincipalKind.ANONYMOUS:
            return ""
        return f"{self.kind.value}:{self.name}"


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS, "")

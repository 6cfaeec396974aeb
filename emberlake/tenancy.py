"""Who a request acts for: tenant names and bearer-token authentication (pure logic).

A tenant name is also an Iceberg namespace and part of Kafka keys, so it is kept to a safe
alphabet. With no tokens configured, auth is off: a request names its tenant in the
``x-emberlake-tenant`` header or gets the default one. With tokens configured, a request must
carry ``Authorization: Bearer <token>`` and acts for that token's tenant only.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from emberlake.errors import TenantError, Unauthenticated
from emberlake.settings import Settings, parse_pairs

TENANT_HEADER = "x-emberlake-tenant"
_TENANT_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Namespaces emberlake keeps for itself; no tenant may take these names.
RESERVED = frozenset({"emberlake", "system", "information_schema", "main", "temp", "pg_catalog"})


def validate_tenant(name: str) -> str:
    """Return the name if it is a valid tenant name, else raise :class:`TenantError`."""
    if not _TENANT_RE.match(name) or name in RESERVED:
        raise TenantError(
            f"invalid tenant {name!r}: use 1-63 characters a-z, 0-9 and _, starting with a letter"
            f" (reserved: {', '.join(sorted(RESERVED))})"
        )
    return name


@dataclass(frozen=True)
class Authenticator:
    """Maps request headers to the one tenant the request may act for."""

    default_tenant: str
    tokens: Mapping[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        tokens = parse_pairs(settings.receiver.tokens)
        for tenant in tokens.values():
            validate_tenant(tenant)
        return cls(validate_tenant(settings.receiver.default_tenant), tokens)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def tenant_for(self, headers: Mapping[str, str]) -> str:
        """Resolve the tenant from lower-cased header names (``authorization``, tenant header)."""
        if not self.enabled:
            return validate_tenant(headers.get(TENANT_HEADER) or self.default_tenant)
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
        for known, tenant in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                asked = headers.get(TENANT_HEADER)
                if asked and asked != tenant:
                    raise TenantError(f"this token may not act for tenant {asked!r}")
                return tenant
        raise Unauthenticated("unknown bearer token")

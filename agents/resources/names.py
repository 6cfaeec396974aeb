"""Resource names: ``tenants/{tenant}/{collection}/{id}``, findings one level deeper.

A name is the one identifier of a resource, in URLs, in other resources' fields and on the
command line. Parsing is strict: a malformed name is an :class:`InvalidArgument`, never a 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.resources.schema import COLLECTIONS, Collection
from emberlake.errors import InvalidArgument, TenantError
from emberlake.tenancy import validate_tenant

#: Resource ids: lower-case letters, digits and hyphens, 1-63 characters, no hyphen at the ends.
ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_id(resource_id: str) -> str:
    if not ID_RE.match(resource_id):
        raise InvalidArgument(
            f"invalid resource id {resource_id!r}: use 1-63 characters a-z, 0-9 and -,"
            " not starting or ending with -"
        )
    return resource_id


@dataclass(frozen=True)
class CollectionName:
    """A collection: ``tenants/t/investigations`` or ``tenants/t/investigations/x/findings``."""

    tenant: str
    collection: Collection
    parent: str  # the name of the parent: "tenants/t" or "tenants/t/investigations/x"

    def __str__(self) -> str:
        return f"{self.parent}/{self.collection.plural}"

    def child(self, resource_id: str) -> ResourceName:
        return ResourceName(self.tenant, self.collection, self.parent, validate_id(resource_id))


@dataclass(frozen=True)
class ResourceName:
    """One resource: its tenant, collection, parent and id."""

    tenant: str
    collection: Collection
    parent: str
    id: str

    def __str__(self) -> str:
        return f"{self.parent}/{self.collection.plural}/{self.id}"

    @property
    def collection_name(self) -> CollectionName:
        return CollectionName(self.tenant, self.collection, self.parent)


def parse(path: str) -> CollectionName | ResourceName:
    """Parse a collection or resource name (a leading ``/`` or ``v1/`` is not part of it)."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "tenants":
        raise InvalidArgument(
            f"invalid name {path!r}: expected tenants/{{tenant}}/{{collection}}[/{{id}}]"
        )
    try:
        tenant = validate_tenant(parts[1])
    except TenantError as exc:
        raise InvalidArgument(str(exc)) from None
    parent = f"tenants/{tenant}"
    rest = parts[2:]
    parent_collection: str | None = None
    while rest:
        plural = rest[0]
        collection = COLLECTIONS.get(plural)
        if collection is None or collection.parent != parent_collection:
            raise InvalidArgument(f"invalid name {path!r}: no collection {plural!r} there")
        if len(rest) == 1:
            return CollectionName(tenant, collection, parent)
        resource_id = validate_id(rest[1])
        if len(rest) == 2:
            return ResourceName(tenant, collection, parent, resource_id)
        parent = f"{parent}/{plural}/{resource_id}"
        parent_collection = plural
        rest = rest[2:]
    raise InvalidArgument(f"invalid name {path!r}")  # pragma: no cover - loop always returns


def parse_resource(path: str) -> ResourceName:
    name = parse(path)
    if not isinstance(name, ResourceName):
        raise InvalidArgument(f"{path!r} names a collection, not a resource")
    return name


def parse_collection(path: str) -> CollectionName:
    name = parse(path)
    if not isinstance(name, CollectionName):
        raise InvalidArgument(f"{path!r} names a resource, not a collection")
    return name

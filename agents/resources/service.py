"""The standard methods (AIP-131..135) over a resource store: Get, List, Create, Update, Delete.

Tenancy is the caller's business (the HTTP layer checks that a name's tenant is the caller's);
everything else about the methods' meaning is here:

- Create assigns an id unless one is given, sets ``name``, ``create_time``, ``update_time`` and
  ``etag``; fields the server owns are ignored in the body. An existing name is ALREADY_EXISTS.
- Update takes a field mask (``update_mask``: comma-separated paths, ``labels.team`` for a key
  in an object, ``*`` for all). Without a mask every field present in the body is updated. A
  path in the mask but not in the body clears that field. An ``etag`` in the body must match the
  stored one, else ABORTED (HTTP 409): someone changed the resource since the caller read it.
- Delete takes an optional etag (same rule) and refuses a resource that has children
  (FAILED_PRECONDITION) unless ``force`` is set, which deletes the children too.
- Create and Update run a collection's rules across fields (``Collection.check``, e.g. a
  silence's end after its start) on the resource as it would be stored.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.resources.filtering import parse_filter
from agents.resources.listing import (
    compare_keys,
    decode_token,
    encode_token,
    page_size_of,
    parse_order_by,
    request_digest,
    sort_key,
    sort_resources,
)
from agents.resources.names import (
    CollectionName,
    ResourceName,
    parse_collection,
    parse_resource,
    validate_id,
)
from agents.resources.schema import OUTPUT_ONLY, validate
from agents.resources.store import ResourceStore, ResourceTransaction
from emberlake.errors import (
    AlreadyExists,
    EtagMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def compute_etag(resource: dict[str, Any]) -> str:
    """A digest of the resource's content (its etag field excluded)."""
    body = {k: v for k, v in resource.items() if k != "etag"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Page:
    """One page of a List: the resources, the token for the next page ("" at the end) and how
    many resources match in all."""

    resources: list[dict[str, Any]]
    next_page_token: str
    total_size: int


def _check_etag(current: dict[str, Any], etag: str | None) -> None:
    if etag and etag != current.get("etag"):
        raise EtagMismatch(
            f"{current['name']} has changed (etag {current.get('etag')}, you sent {etag}):"
            " get it again and retry"
        )


def _apply_path(target: dict[str, Any], source: dict[str, Any], path: list[str]) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
        src = source.get(part) if isinstance(source, dict) else None
        source = src if isinstance(src, dict) else {}
    leaf = path[-1]
    if isinstance(source, dict) and leaf in source:
        target[leaf] = copy.deepcopy(source[leaf])
    else:
        target.pop(leaf, None)


class ResourceService:
    """Get, List, Create, Update and Delete, with names, etags and masks checked."""

    def __init__(
        self,
        store: ResourceStore,
        clock: Callable[[], str] = now_rfc3339,
        id_factory: Callable[[], str] = new_id,
    ):
        self.store = store
        self.clock = clock
        self.id_factory = id_factory

    # -- Get ------------------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        rn = parse_resource(name)
        with self.store.transaction() as tx:
            return self._get(tx, rn)

    @staticmethod
    def _get(tx: ResourceTransaction, rn: ResourceName) -> dict[str, Any]:
        found = tx.get(str(rn))
        if found is None:
            raise NotFound(f"{rn} does not exist")
        return found

    # -- List -----------------------------------------------------------------------------------
    def list(
        self,
        collection: str,
        filter: str = "",
        order_by: str = "",
        page_size: int | None = None,
        page_token: str = "",
    ) -> Page:
        cn = parse_collection(collection)
        predicate = parse_filter(filter, cn.collection)
        order = parse_order_by(order_by, cn.collection)
        size = page_size_of(page_size)
        digest = request_digest(str(cn), filter, order_by)
        after = decode_token(page_token, digest) if page_token else None
        with self.store.transaction() as tx:
            if cn.collection.parent is not None and tx.get(cn.parent) is None:
                raise NotFound(f"{cn.parent} does not exist")
            matching = [r for r in tx.children(cn.parent, cn.collection.plural) if predicate(r)]
        ordered = sort_resources(matching, order)
        if after is not None:
            ordered = [r for r in ordered if compare_keys(sort_key(r, order), after, order) > 0]
        page = ordered[:size]
        token = encode_token(digest, sort_key(page[-1], order)) if len(ordered) > size else ""
        return Page(page, token, len(matching))

    # -- Create ---------------------------------------------------------------------------------
    def create(
        self, collection: str, body: dict[str, Any], resource_id: str | None = None
    ) -> dict[str, Any]:
        cn = parse_collection(collection)
        with self.store.transaction() as tx:
            return self.create_in(tx, cn, body, resource_id)

    def create_in(
        self,
        tx: ResourceTransaction,
        cn: CollectionName,
        body: dict[str, Any],
        resource_id: str | None = None,
    ) -> dict[str, Any]:
        """Create inside a caller's transaction (the investigation intake batches work so)."""
        if not isinstance(body, dict):
            raise InvalidArgument(f"a {cn.collection.singular} is a JSON object")
        if cn.collection.parent is not None and tx.get(cn.parent) is None:
            raise NotFound(f"{cn.parent} does not exist")
        given = resource_id is not None
        rn = cn.child(validate_id(resource_id) if given else self.id_factory())  # type: ignore[arg-type]
        while tx.get(str(rn)) is not None:
            if given:
                raise AlreadyExists(f"{rn} already exists")
            rn = cn.child(self.id_factory())
        resource = validate(
            cn.collection, {k: v for k, v in body.items() if k not in OUTPUT_ONLY}, creating=True
        )
        now = self.clock()
        if cn.collection.check is not None:
            resource = cn.collection.check(resource, now)
        resource = {"name": str(rn), **resource, "create_time": now, "update_time": now}
        resource["etag"] = compute_etag(resource)
        tx.put(str(rn), rn.parent, cn.collection.plural, resource)
        return resource

    # -- Update ---------------------------------------------------------------------------------
    def update(
        self, name: str, body: dict[str, Any], update_mask: builtins.list[str] | None = None
    ) -> dict[str, Any]:
        rn = parse_resource(name)
        with self.store.transaction() as tx:
            return self.update_in(tx, rn, body, update_mask)

    def update_in(
        self,
        tx: ResourceTransaction,
        rn: ResourceName,
        body: dict[str, Any],
        update_mask: builtins.list[str] | None = None,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidArgument(f"a {rn.collection.singular} is a JSON object")
        if body.get("name") not in (None, str(rn)):
            raise InvalidArgument(f"the body names {body['name']!r}, the request {rn}")
        current = self._get(tx, rn)
        _check_etag(current, body.get("etag"))
        if update_mask is None:
            paths = [[k] for k in body if k not in OUTPUT_ONLY]
        elif update_mask == ["*"]:
            paths = [[k] for k in set(body) | set(current) if k not in OUTPUT_ONLY]
        else:
            paths = []
            for item in update_mask:
                path = item.strip().split(".")
                if not item.strip() or not all(path):
                    raise InvalidArgument(f"invalid update_mask path {item!r}")
                if path[0] in OUTPUT_ONLY:
                    continue  # the server owns these; a mask naming them changes nothing
                paths.append(path)
        updated = copy.deepcopy(current)
        for path in paths:
            _apply_path(updated, body, path)
        updated = validate(rn.collection, updated, creating=update_mask == ["*"])
        for field, spec in rn.collection.fields.items():
            if spec.required and updated.get(field) is None:
                raise InvalidArgument(f"{rn.collection.singular}.{field} cannot be cleared")
        now = self.clock()
        if rn.collection.check is not None:
            updated = rn.collection.check(updated, now)
        updated["name"], updated["create_time"] = current["name"], current["create_time"]
        updated["update_time"] = now
        updated["etag"] = compute_etag(updated)
        tx.put(str(rn), rn.parent, rn.collection.plural, updated)
        return updated

    # -- Delete ---------------------------------------------------------------------------------
    def delete(self, name: str, etag: str | None = None, force: bool = False) -> None:
        rn = parse_resource(name)
        with self.store.transaction() as tx:
            current = self._get(tx, rn)
            _check_etag(current, etag)
            if tx.has_children(str(rn)):
                if not force:
                    raise FailedPrecondition(
                        f"{rn} has child resources: delete them first or pass force=true"
                    )
                tx.delete_children(str(rn))
            tx.delete(str(rn))

"""The ``resources`` tool: the resource API's standard methods, for one tenant.

One general tool instead of one per collection: get, list, create, update and delete over
investigations, anomalies, known issues, findings and approvals. Names may be given relative to
the tenant (``investigations/abc``); the tool completes them, and refuses another tenant's.

Made to be run twice: a create with an ``id`` that already exists returns the existing resource,
and results leave out server-set times and etags, so a step retried after a crash reads the same.
Calls with effects outside the lake wait for a person (see :meth:`ResourcesTool.needs_approval`);
approvals themselves are decided by people, so the tool only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.llm.base import ToolSpec
from agents.resources.client import ResourceClient
from emberlake.errors import AlreadyExists, InvalidArgument, QuerydUnavailable, ToolUnavailable

from .base import ToolOutput

#: Investigation states that close it: reaching them needs a person's approval.
CLOSING_STATES = frozenset({"RESOLVED", "DISMISSED"})
#: Server-set fields left out of results (they differ between two runs of the same call).
VOLATILE = ("create_time", "update_time", "etag")
METHODS = ("get", "list", "create", "update", "delete")

SPEC = ToolSpec(
    name="resources",
    description=(
        "Get, list, create, update or delete resources of this tenant: investigations,"
        " anomalies, known_issues, findings (under an investigation:"
        " investigations/{id}/findings) and approvals (read-only). Names may omit the"
        " 'tenants/{tenant}/' prefix. Give `id` when creating so a retry cannot duplicate."
        " Resolving or dismissing an investigation, deleting anything, or any call with"
        " needs_approval=true waits for a person's approval before it runs."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": list(METHODS)},
            "name": {"type": "string", "description": "resource name (get, update, delete)"},
            "collection": {"type": "string", "description": "collection (list, create)"},
            "id": {"type": "string", "description": "id of the resource to create"},
            "body": {"type": "object", "description": "fields to create or update"},
            "update_mask": {"type": "array", "items": {"type": "string"}},
            "filter": {"type": "string", "description": 'AIP-160 filter, e.g. state = "OPEN"'},
            "order_by": {"type": "string"},
            "page_size": {"type": "integer"},
            "page_token": {"type": "string"},
            "needs_approval": {"type": "boolean"},
            "reason": {"type": "string", "description": "why, shown to the approver"},
        },
        "required": ["method"],
    },
)


class ResourcesTool:
    """The resource API as one tenant sees it."""

    def __init__(self, client: ResourceClient, tenant: str):
        self.client = client
        self.tenant = tenant

    @property
    def spec(self) -> ToolSpec:
        return SPEC

    def needs_approval(self, arguments: Mapping[str, Any]) -> str | None:
        method = arguments.get("method")
        why = str(arguments.get("reason") or "")
        if arguments.get("needs_approval"):
            return why or "the agent marked this call as needing approval"
        if method == "delete":
            return why or f"deleting {arguments.get('name')}"
        target = str(arguments.get("name") or arguments.get("collection") or "")
        state = (arguments.get("body") or {}).get("state")
        if method in ("create", "update") and "investigations" in target and state:
            if str(state).upper() in CLOSING_STATES and not target.endswith("/findings"):
                return why or f"setting {target} to {state}"
        return None

    def _full(self, name: str) -> str:
        name = name.strip().strip("/")
        if name.startswith("v1/"):
            name = name[3:]
        if not name.startswith("tenants/"):
            return f"tenants/{self.tenant}/{name}"
        if name.split("/")[1] != self.tenant:
            raise InvalidArgument(
                f"{name} belongs to another tenant; this session is {self.tenant}"
            )
        return name

    def run(self, arguments: Mapping[str, Any]) -> ToolOutput:
        method = arguments.get("method")
        if method not in METHODS:
            return ToolOutput.error(f"method must be one of {', '.join(METHODS)}")
        target = str(arguments.get("name") or arguments.get("collection") or "")
        if not target:
            return ToolOutput.error("give `name` (get, update, delete) or `collection`")
        path = self._full(target)
        if method != "get" and method != "list" and "/approvals" in path:
            return ToolOutput.error("approvals are decided by people; agents may only read them")
        try:
            return ToolOutput.of(stable(self._call(str(method), path, arguments)))
        except QuerydUnavailable as exc:
            raise ToolUnavailable(str(exc)) from None

    def _call(self, method: str, path: str, a: Mapping[str, Any]) -> Any:
        body = dict(a.get("body") or {})
        if method == "get":
            return self.client.get(path)
        if method == "list":
            size = a.get("page_size")
            return self.client.list(
                path,
                str(a.get("filter") or ""),
                str(a.get("order_by") or ""),
                int(size) if size else 50,
                str(a.get("page_token") or ""),
            )
        if method == "create":
            rid = a.get("id")
            try:
                return self.client.create(path, body, resource_id=str(rid) if rid else None)
            except AlreadyExists:
                if not rid:
                    raise
                # A retried step: the first attempt created it.
                return self.client.get(f"{path}/{rid}")
        if method == "update":
            mask = a.get("update_mask")
            return self.client.update(path, body, list(mask) if mask else sorted(body))
        self.client.delete(path)
        return {"deleted": path}


def stable(value: Any) -> Any:
    """The value without server-set times and etags, at any depth."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value

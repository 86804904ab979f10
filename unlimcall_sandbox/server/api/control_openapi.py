"""The control plane's OpenAPI description (``GET /_sandbox/openapi.json``), built from the
routes themselves: every route under ``/_sandbox`` is in it, with its path parameters,
status, response struct and whether it needs the admin token. What the routes do not
declare — their handlers read bodies and query strings by hand — comes from the tables
below; ``tests/integration/test_docs.py`` fails when a handler reads a body not listed."""

from __future__ import annotations

import inspect
import json
import re
import typing
from typing import Any

import msgspec
from litestar import Response, Router
from litestar.routes import HTTPRoute

from unlimcall_sandbox import __version__
from unlimcall_sandbox.server.api.inbox import InboxSettings, inbox_router
from unlimcall_sandbox.server.api.sandbox import ClockAdvance, EventFire, sandbox_router
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services import events as event_service
from unlimcall_sandbox.server.services.faults import FaultCreate
from unlimcall_sandbox.server.structs import (
    AccountCreate,
    AccountPatch,
    AgentCreate,
    CdrGenerate,
    OAuthClientCreate,
    TokenCreate,
)

ROUTERS: tuple[Router, ...] = (sandbox_router, inbox_router)
SCHEME = "adminToken"

# Every handler of a POST, PUT or PATCH is in one of the three tables below (the test of the
# docs checks it). BODIES: the struct it reads its JSON body into, or the name of the /v1
# contract's schema it validates the body against.
BODIES: dict[str, type[msgspec.Struct] | str] = {
    "create_account": AccountCreate,
    "patch_account": AccountPatch,
    "create_token": TokenCreate,
    "create_oauth_client": OAuthClientCreate,
    "create_agent": AgentCreate,
    "generate_cdrs": CdrGenerate,
    "fire_event": EventFire,
    "advance_clock": ClockAdvance,
    "create_fault": FaultCreate,
    "configure": InboxSettings,
    "place_call": "CallCreate",
}
# Handlers that read no body, and the inbox's receiver, which keeps any body.
BODILESS: frozenset[str] = frozenset({"redeliver", "fast_forward", "reset"})
ANY_BODY: frozenset[str] = frozenset({"receive"})

SUMMARIES: dict[str, str] = {
    "create_account": "Create an account, ready for everything",
    "list_accounts": "List accounts",
    "account_overview": "Everything the dashboard shows for one account",
    "get_account": "An account with every flag",
    "patch_account": "Change an account's flags, balance or upstream behaviour",
    "create_token": "Mint a portal token (shown once)",
    "revoke_token": "Revoke a token",
    "place_call": "Place a call for an account with the admin token (as POST /v1/calls)",
    "create_oauth_client": "Create an OAuth client (client_credentials)",
    "create_agent": "Add an agent (SIP line)",
    "generate_cdrs": (
        "Generate seeded CDR history (default: the last 7 days) as a background job:"
        " 202 with its jobId; follow it with GET /jobs/{jobId}"
    ),
    "get_job": "A background job's progress: state, done/total, ETA",
    "get_call": "A call's state, timestamps, plan and events",
    "fire_event": "Fire a webhook event (like stripe trigger)",
    "list_deliveries": "Webhook deliveries with their attempts",
    "redeliver": "Send a delivery again",
    "advance_clock": (
        "Move sandbox time forward by seconds or to a time; every call step and webhook"
        " attempt due in between happens in order, as of its planned time"
    ),
    "fast_forward": (
        "Advance until nothing is pending (the last planned call step and webhook attempt)"
    ),
    "get_clock": "Sandbox time and scale",
    "reset": "Wipe everything and reload the demo data; answers a new demo token",
    "create_fault": "Add a fault rule",
    "list_faults": "List fault rules",
    "delete_fault": "Remove a fault rule",
    "delete_faults": "Remove every fault rule",
    "receive": "Built-in webhook receiver (no auth): use its URL as a hook target_url",
    "read_inbox": "What an inbox received, with signature verdicts",
    "configure": "Set the status an inbox answers with (to exercise retries)",
    "clear": "Empty an inbox",
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _enum(values: typing.Iterable[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_LIMIT = _query("limit", "Most items to answer.", {"type": "integer", "minimum": 1})

QUERIES: dict[str, list[dict[str, Any]]] = {
    "account_overview": [
        _query("disposition", "Only CDRs with this disposition code."),
        _query("country", "Only CDRs to this country."),
    ],
    "list_deliveries": [
        _query("hookId", "Only this hook's deliveries."),
        _query("status", "Only deliveries in this status.", _enum(delivery_service.STATUSES)),
        _query("event", "Only this event type.", _enum(event_service.EVENT_TYPES)),
        _query("customerId", "Only this account's deliveries."),
        _LIMIT,
    ],
    "read_inbox": [_LIMIT],
}

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_REF = "#/components/schemas/{name}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _borrow(name: str, contract: dict[str, Any], into: dict[str, Any]) -> None:
    """Copy the contract's schema ``name`` and every schema it refers to into ``into``."""
    if name in into:
        return
    into[name] = contract[name]
    for found in re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(contract[name])):
        _borrow(found, contract, into)


def build(
    contract_schemas: dict[str, Any], routers: tuple[Router, ...] = ROUTERS
) -> dict[str, Any]:
    """The description, with empty ``servers`` (the caller sets it per base URL).
    ``contract_schemas``: the /v1 contract's ``components.schemas`` (its ``Error`` envelope
    and request bodies are shared with the control plane)."""
    paths: dict[str, dict[str, Any]] = {}
    structs: list[type[msgspec.Struct]] = []
    borrowed: dict[str, Any] = {}
    _borrow("Error", contract_schemas, borrowed)

    def ref(struct: type[msgspec.Struct] | str) -> dict[str, Any]:
        if isinstance(struct, str):
            _borrow(struct, contract_schemas, borrowed)
            return {"$ref": _REF.format(name=struct)}
        if struct not in structs:
            structs.append(struct)
        return {"$ref": _REF.format(name=struct.__name__)}

    error = _json({"$ref": _REF.format(name="Error")}, "An error, in the `/v1` envelope.")
    for router in routers:
        for route in router.routes:
            if not isinstance(route, HTTPRoute):
                continue
            path = _PARAM.sub(r"{\1}", route.path)
            path_params = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in _PARAM.findall(route.path)
            ]
            for handler in route.route_handlers:
                if handler.fn.__module__.startswith("litestar."):
                    continue  # the OPTIONS handler Litestar adds for CORS
                name = handler.handler_name
                guarded = bool(router.guards or handler.guards)
                returned = handler.parsed_fn_signature.return_type.annotation
                if typing.get_origin(returned) is Response:  # a struct with its own status
                    (returned,) = typing.get_args(returned)
                if isinstance(returned, type) and issubclass(returned, msgspec.Struct):
                    answer = ref(returned)
                elif typing.get_origin(returned) is dict:
                    answer = {"type": "object"}
                else:
                    answer = {}
                responses: dict[str, Any] = {str(handler.status_code): _json(answer, "Done.")}
                if guarded:
                    responses["401"] = _json(
                        {"$ref": _REF.format(name="Error")}, "Missing or wrong admin token."
                    )
                responses["default"] = error
                tag = path.removeprefix("/_sandbox/").split("/", 1)[0]
                operation: dict[str, Any] = {
                    "tags": [tag],
                    "operationId": _camel(name),
                    "summary": SUMMARIES.get(name, name.replace("_", " ").capitalize()),
                    "parameters": path_params + QUERIES.get(name, []),
                    "responses": responses,
                }
                doc = inspect.cleandoc(handler.fn.__doc__ or "")
                if doc:
                    operation["description"] = doc
                if name in BODIES:
                    operation["requestBody"] = {
                        "required": True,
                        "content": {"application/json": {"schema": ref(BODIES[name])}},
                    }
                elif name in ANY_BODY:
                    operation["requestBody"] = {
                        "required": False,
                        "description": "Any body: it is kept exactly as it arrived.",
                        "content": {"application/json": {"schema": {}}},
                    }
                if not guarded:
                    operation["security"] = []
                for method in sorted(handler.http_methods):
                    paths.setdefault(path, {})[method.lower()] = operation
    _, components = msgspec.json.schema_components(structs, ref_template=_REF)
    for name, schema in borrowed.items():
        components.setdefault(name, schema)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "UnlimCall Sandbox control plane",
            "version": __version__,
            "description": (
                "The sandbox-only operations under `/_sandbox`: accounts, tokens, agents, CDR "
                "history, calls, events, deliveries, the clock, fault rules, reset and the "
                "built-in webhook inbox. Every operation but the inbox's POST needs "
                "`Authorization: Bearer $UNLIMCALL_ADMIN_TOKEN` (use Authorize)."
            ),
        },
        "servers": [],
        "security": [{SCHEME: []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token `serve` prints (UNLIMCALL_ADMIN_TOKEN).",
                }
            },
            "schemas": dict(sorted(components.items())),
        },
    }

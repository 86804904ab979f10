"""Checks every HTTP response the suite produces against the contract.

``/v1`` operations: the status must be one the operation lists — no exceptions: a
suspended account, an oversized body, an unusable ``Prefer`` are all answered with listed
statuses (``docs/statuses.md``) — and a JSON body must match the listed schema. Everything
else (unknown routes, the control plane, OAuth) must at least answer errors in the
contract's ``Error`` envelope, as JSON. A 500 that the contract does not list for the
operation fails here too.
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator, FormatChecker

from unlimcall_sandbox.resources import CONTRACT

SPEC_PATH = Path(str(CONTRACT))


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return data


class ContractViolation(AssertionError):
    pass


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    root = {**schema, "components": spec()["components"]}
    return Draft202012Validator(root, format_checker=FormatChecker())


@cache
def schema_validator(ref: str) -> Draft202012Validator:
    return _validator({"$ref": ref})


def _operations() -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    ops = []
    for path, item in spec()["paths"].items():
        pattern = re.compile("^/v1" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method, op in item.items():
            ops.append((method.upper(), pattern, op))
    return ops


def find_operation(method: str, path: str) -> dict[str, Any] | None:
    for m, pattern, op in _operations():
        if m == method and pattern.match(path):
            return op
    return None


def _resolve(response: dict[str, Any]) -> dict[str, Any]:
    ref = response.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        resolved: dict[str, Any] = spec()["components"]["responses"][name]
        return resolved
    return response


def check(method: str, path: str, status: int, headers: httpx.Headers, body: bytes) -> None:
    """``HEAD`` is checked as the ``GET`` it stands for: its status and headers (the media
    type), and no body at all."""
    ctype = headers.get("content-type", "")
    head = method == "HEAD"
    if head:
        if body:
            raise ContractViolation(f"HEAD {path} {status}: answered a body {body[:200]!r}")
        method = "GET"
    if not path.startswith("/v1"):
        _check_non_contract(path, status, ctype, body, head)
        return
    op = find_operation(method, path)
    if op is None:
        if path == "/v1/openapi.json" and method == "GET" and status == 200:
            return
        _check_error(path, status, ctype, body, head)
        if status not in (404, 405):
            raise ContractViolation(f"{method} {path}: not in the contract, answered {status}")
        return
    listed = op["responses"]
    key = str(status)
    if key not in listed and "default" not in listed:
        raise ContractViolation(
            f"{method} {path}: status {status} not in the contract ({sorted(listed)}); "
            f"body={body[:300]!r}"
        )
    response = _resolve(listed.get(key) or listed["default"])
    content = response.get("content")
    if not content:
        if body:
            raise ContractViolation(
                f"{method} {path} {status}: expected no body, got {body[:200]!r}"
            )
        return
    if not ctype.startswith("application/json"):
        raise ContractViolation(f"{method} {path} {status}: Content-Type {ctype!r} is not JSON")
    if head:
        return
    schema = content["application/json"]["schema"]
    data = json.loads(body)
    errors = sorted(_validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        raise ContractViolation(
            f"{method} {path} {status}: body does not match the contract: "
            f"{errors[0].message} at {list(errors[0].path)}; body={body[:300]!r}"
        )


def _check_error(path: str, status: int, ctype: str, body: bytes, head: bool = False) -> None:
    if status < 400:
        return
    if not ctype.startswith("application/json"):
        raise ContractViolation(
            f"{path} {status}: error with Content-Type {ctype!r}: {body[:200]!r}"
        )
    if head:
        return
    data = json.loads(body)
    errors = list(schema_validator("#/components/schemas/Error").iter_errors(data))
    if errors or not isinstance(data.get("message"), str):
        raise ContractViolation(f"{path} {status}: not the error envelope: {body[:300]!r}")


def _check_non_contract(
    path: str, status: int, ctype: str, body: bytes, head: bool = False
) -> None:
    if status >= 500 and path not in ("/readyz",):
        raise ContractViolation(f"{path}: server error {status}: {body[:300]!r}")
    _check_error(path, status, ctype, body, head)


def check_webhook_body(event_type: str, data: dict[str, Any]) -> None:
    """A delivered event against the contract's ``webhooks`` schema for its type."""
    schema = spec()["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    errors = list(_validator(schema).iter_errors(data))
    if errors:
        raise ContractViolation(f"{event_type} body does not match: {errors[0].message}")


def sync_response_hook(response: httpx.Response) -> None:
    response.read()
    check(
        response.request.method,
        response.request.url.path,
        response.status_code,
        response.headers,
        response.content,
    )


def checked_client(timeout: float = 10.0) -> httpx.Client:
    """A synchronous client whose every response is checked against the contract."""
    return httpx.Client(timeout=timeout, event_hooks={"response": [sync_response_hook]})


async def response_hook(response: httpx.Response) -> None:
    await response.aread()
    check(
        response.request.method,
        response.request.url.path,
        response.status_code,
        response.headers,
        response.content,
    )

"""The reference: bare Litestar endpoints that answer a constant JSON body, served exactly
as the sandbox is (uvicorn, uvloop, httptools, one process, access log off).

``python -m bench.reference_app --port P --spec FILE`` where FILE is JSON:
``{"routes": [{"method": "GET", "path": "/v1/me", "query": "", "body": "<base64>"}]}``.
One handler per method and path; a path measured with several query strings (``/v1/cdrs``
with ``limit=100`` and ``limit=1000``) picks its body by the raw query string.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from litestar import HttpMethod, Litestar, Request, Response, get, route

_JSON = "application/json"


def _constant(body: bytes) -> Callable[[], Any]:
    async def handler() -> Response[bytes]:
        return Response(content=body, media_type=_JSON)

    return handler


def _by_query(bodies: dict[bytes, bytes]) -> Callable[..., Any]:
    fallback = next(iter(bodies.values()))

    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        return Response(
            content=bodies.get(request.scope["query_string"], fallback), media_type=_JSON
        )

    return handler


@get("/__ready", sync_to_thread=False)
def ready() -> dict[str, str]:
    return {"status": "ok"}


def build(spec: dict[str, Any]) -> Litestar:
    tables: dict[tuple[str, str], dict[bytes, bytes]] = {}
    for item in spec["routes"]:
        key = (item["method"].upper(), item["path"])
        tables.setdefault(key, {})[item.get("query", "").encode()] = base64.b64decode(item["body"])
    handlers: list[Any] = [ready]
    for i, ((method, path), bodies) in enumerate(sorted(tables.items())):
        fn = _constant(next(iter(bodies.values()))) if len(bodies) == 1 else _by_query(bodies)
        fn.__name__ = f"reference_{i}"
        handlers.append(
            route(path, http_method=[HttpMethod(method)], status_code=200, name=fn.__name__)(fn)
        )
    return Litestar(route_handlers=handlers, openapi_config=None, debug=False, logging_config=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args()
    app = build(json.loads(args.spec.read_text()))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()

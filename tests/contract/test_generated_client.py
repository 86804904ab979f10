"""A Python client generated from the contract at test time (openapi-python-client), driven
through the integrator journey against the harness's sandbox: all seven operations, every
documented error parsed into the typed ``Error``, and a suspended account handled without
one undocumented status. The client is built with ``raise_on_unexpected_status=True``, so
any status the contract does not list for an operation fails the test with
``UnexpectedStatus``; every response also passes the suite's contract check.

The generator runs once per session (about a second), into a temporary directory that is
put on ``sys.path`` for the session and taken off afterwards. Everything it talks to is
the sandbox on 127.0.0.1; webhooks go to the sandbox's own inbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.support.contract import response_hook
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.prefer import FORCEABLE

CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "unlimcall-openapi.json"
PACKAGE = "unlimcall_generated_client"
OPERATIONS = {
    "getMe": "account.get_me",
    "getBalance": "account.get_balance",
    "listCdrs": "calls.list_cdrs",
    "originateCall": "calls.originate_call",
    "listAgents": "agents.list_agents",
    "createHook": "webhooks.create_hook",
    "deleteHook": "webhooks.delete_hook",
}


@pytest.fixture(scope="session")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The generated package's modules: ``gen.client``, ``gen.errors``, ``gen.models``,
    ``gen.types`` and one per operation (``gen.getMe``, …)."""
    out = tmp_path_factory.mktemp("generated-client")
    config = out / "config.yml"
    # No post hooks: the client must not depend on a formatter being on PATH.
    config.write_text("post_hooks: []\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(CONTRACT),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"generation failed:\n{done.stdout}\n{done.stderr}"
    sys.path.insert(0, str(out))
    try:
        modules: dict[str, ModuleType] = {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in ("client", "errors", "models", "types")
        }
        for operation, module in OPERATIONS.items():
            modules[operation] = importlib.import_module(f"{PACKAGE}.api.{module}")
        yield SimpleNamespace(**modules)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _client(gen: SimpleNamespace, sb: Sandbox, token: str, **headers: str) -> Any:
    """A generated client on the sandbox's /v1 that refuses undocumented statuses; its
    responses go through the suite's contract check as well."""
    return gen.client.AuthenticatedClient(
        base_url=f"{sb.base_url}/v1",
        token=token,
        headers=headers,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"response": [response_hook]}},
    )


def _error(response: Any, gen: SimpleNamespace, status: int, code: str) -> Any:
    """``response`` is ``status``, parsed into the generated ``Error`` with ``code``."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, gen.models.Error), response.parsed
    assert response.parsed.error == code, response.parsed
    assert isinstance(response.parsed.message, str)
    return response.parsed


async def _call(gen: SimpleNamespace, operation: str, client: Any, **kwargs: Any) -> Any:
    return await getattr(gen, operation).asyncio_detailed(client=client, **kwargs)


def _sandbox_now(response: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(response.headers["x-unlimcall-sandbox-time"])


async def _inbox_message(sb: Sandbox, name: str, event: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        r = await sb.client.get(f"/_sandbox/inbox/{name}", headers=sb.admin)
        found = [m for m in r.json()["messages"] if m["event"] == event]
        if found:
            message: dict[str, Any] = found[0]
            return message
        assert time.monotonic() < deadline, f"no {event} in inbox {name}: {r.text[:500]}"
        await asyncio.sleep(0.05)


async def test_the_integrator_journey_through_a_generated_client(
    gen: SimpleNamespace, sandbox: Sandbox
) -> None:
    sb = sandbox
    m = gen.models
    customer, token, agent_id = await sb.customer_with_agent()
    inbox = f"generated-{customer}"
    async with _client(gen, sb, token) as api:
        me = await _call(gen, "getMe", api)
        assert me.status_code == 200 and isinstance(me.parsed, m.Me)
        assert me.parsed.customer_id == customer

        balance = await _call(gen, "getBalance", api)
        assert isinstance(balance.parsed, m.Balance)
        assert (balance.parsed.balance, balance.parsed.blocked) == (100.0, False)

        agents = await _call(gen, "listAgents", api)
        assert isinstance(agents.parsed, m.AgentList)
        assert [a.id for a in agents.parsed.agents] == [agent_id]

        hook = await _call(
            gen,
            "createHook",
            api,
            body=m.HookCreate(
                event=m.HookCreateEvent.CALL_ENDED,
                target_url=f"{sb.base_url}/_sandbox/inbox/{inbox}",
            ),
        )
        assert isinstance(hook.parsed, m.HookCreated)
        assert hook.parsed.secret.startswith("whsec_")

        placed = await _call(
            gen,
            "originateCall",
            api,
            body=m.CallCreate(ai_agent_id=agent_id, to_number="+15005550002"),
        )
        assert isinstance(placed.parsed, m.CallQueued)
        assert placed.parsed.status == "queued"
        call_id = str(placed.parsed.call_id)
        await sb.wait_call(call_id)

        # The webhook, signed with the hook's secret, parses into the contract's model.
        message = await _inbox_message(sb, inbox, "call.ended")
        assert message["signature"] == "verified"
        ended = m.CallEndedEvent.from_dict(message["body"])
        assert (ended.call_id, ended.phone) == (call_id, "+15005550002")

        # A window in sandbox time (the header every answer carries), as typed datetimes.
        now = _sandbox_now(await _call(gen, "getBalance", api))
        cdrs = await _call(
            gen,
            "listCdrs",
            api,
            from_=now - dt.timedelta(days=1),
            till=now + dt.timedelta(seconds=1),
        )
        assert isinstance(cdrs.parsed, m.CdrList)
        assert cdrs.parsed.count == 1
        assert cdrs.parsed.calls[0].dst == "+15005550002"
        assert isinstance(cdrs.parsed.calls[0].start_time, dt.datetime)

        gone = await _call(gen, "deleteHook", api, id=hook.parsed.id)
        assert gone.status_code == 204


async def test_every_documented_error_parses_into_error(
    gen: SimpleNamespace, sandbox: Sandbox
) -> None:
    """The errors as the sandbox really produces them, then every one the contract lists
    (forced with ``Prefer``), on every operation."""
    sb = sandbox
    m = gen.models
    customer, token, agent_id = await sb.customer_with_agent()
    call = m.CallCreate(ai_agent_id=agent_id, to_number="+14155551234")
    hook = m.HookCreate(event=m.HookCreateEvent.CALL_ENDED, target_url="not a url")
    args: dict[str, dict[str, Any]] = {
        "originateCall": {"body": call},
        "createHook": {"body": hook},
        "deleteHook": {"id": uuid.uuid4()},
    }

    async with _client(gen, sb, "unl_live_not-a-token") as stranger:
        for operation in OPERATIONS:
            r = await _call(gen, operation, stranger, **args.get(operation, {}))
            _error(r, gen, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer ")

    async with _client(gen, sb, token) as api:
        bad = m.CallCreate(ai_agent_id=agent_id, to_number="12")
        _error(await _call(gen, "originateCall", api, body=bad), gen, 400, "invalid_input")
        big = m.CallCreate(
            ai_agent_id=agent_id,
            to_number="+14155551234",
            metadata=m.CallCreateMetadata.from_dict({"pad": "x" * 70_000}),
        )
        error = _error(await _call(gen, "originateCall", api, body=big), gen, 400, "invalid_input")
        assert "larger than" in error.message
        unknown = m.CallCreate(ai_agent_id="999999", to_number="+14155551234")
        _error(await _call(gen, "originateCall", api, body=unknown), gen, 404, "ai_agent_not_found")
        reject = m.CallCreate(ai_agent_id=agent_id, to_number="+15005550001")
        _error(await _call(gen, "originateCall", api, body=reject), gen, 502, "originate_failed")
        _error(await _call(gen, "createHook", api, body=hook), gen, 400, "invalid_input")
        _error(await _call(gen, "deleteHook", api, id=uuid.uuid4()), gen, 404, "not_found")
        now = dt.datetime.now(dt.UTC)
        for window, code in [
            ({"from_": now, "till": now - dt.timedelta(hours=1)}, "till_must_be_after_from"),
            ({"from_": now - dt.timedelta(days=40), "till": now}, "window_too_wide"),
        ]:
            _error(await _call(gen, "listCdrs", api, **window), gen, 400, code)
        await sb.patch_account(customer, balanceUpstream="failing")
        _error(await _call(gen, "getBalance", api), gen, 500, "balance_unavailable")
        await sb.patch_account(customer, balanceUpstream="ok", dialerEnabled=False)
        _error(await _call(gen, "originateCall", api, body=call), gen, 409, "dialer_required")
        await sb.patch_account(customer, dialerEnabled=True, engineConfigured=False)
        _error(await _call(gen, "originateCall", api, body=call), gen, 503, "engine_not_configured")
        await sb.patch_account(customer, engineConfigured=True, provisioned=False)
        _error(await _call(gen, "listCdrs", api), gen, 409, "account_not_provisioned")
        await sb.patch_account(customer, provisioned=True)

        # Every listed error of every operation, forced, parses the same way.
        for operation, listed in FORCEABLE.items():
            for status, codes in listed.items():
                for code in codes:
                    # A client of its own (the generated ``with_headers`` also changes the
                    # headers of the client it was called on, once that has connected).
                    prefer = f"code={status}, error={code}"
                    async with _client(gen, sb, token, Prefer=prefer) as forced:
                        r = await _call(gen, operation, forced, **args.get(operation, {}))
                    _error(r, gen, status, code)

    # An unusable preference is ignored: the ordinary answer, and a header saying why.
    async with _client(gen, sb, token, Prefer="code=418") as odd:
        r = await _call(gen, "getMe", odd)
    assert isinstance(r.parsed, m.Me)
    assert r.headers["x-unlimcall-prefer-ignored"].startswith("getMe lists no 418;")


async def test_a_suspended_account_meets_no_unexpected_status(
    gen: SimpleNamespace, sandbox: Sandbox
) -> None:
    sb = sandbox
    m = gen.models
    customer, token, agent_id = await sb.customer_with_agent()
    await sb.patch_account(customer, status="suspended")
    async with _client(gen, sb, token) as api:
        _error(await _call(gen, "getMe", api), gen, 403, "account_suspended")
        balance = await _call(gen, "getBalance", api)
        assert isinstance(balance.parsed, m.Balance) and balance.parsed.blocked is True
        cdrs = await _call(gen, "listCdrs", api)
        assert isinstance(cdrs.parsed, m.CdrList)
        agents = await _call(gen, "listAgents", api)
        assert isinstance(agents.parsed, m.AgentList) and agents.parsed.count == 1
        call = m.CallCreate(ai_agent_id=agent_id, to_number="+14155551234")
        error = _error(
            await _call(gen, "originateCall", api, body=call), gen, 502, "originate_failed"
        )
        assert "account suspended" in error.message
        hook = await _call(
            gen,
            "createHook",
            api,
            body=m.HookCreate(
                event=m.HookCreateEvent.CALL_ENDED,
                target_url=f"{sb.base_url}/_sandbox/inbox/suspended-{customer}",
            ),
        )
        assert isinstance(hook.parsed, m.HookCreated)
        gone = await _call(gen, "deleteHook", api, id=hook.parsed.id)
        assert gone.status_code == 204
        # ``sync``-style helpers return the parsed body: never None for a suspended account.
        assert isinstance(await gen.getBalance.asyncio(client=api), m.Balance)
        assert isinstance(await gen.getMe.asyncio(client=api), m.Error)

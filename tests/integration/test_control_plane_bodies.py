"""Every control-plane answer is a declared struct, and is what ``/_sandbox/openapi.json``
(built from those structs) says it is."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from tests.support.sandbox import Sandbox


class Described:
    """Asks the control plane, and checks each answer against its description."""

    def __init__(self, sb: Sandbox, spec: dict[str, Any]) -> None:
        self.sb = sb
        self.spec = spec
        self.checked: set[tuple[str, str]] = set()

    async def ask(self, method: str, template: str, url: str, **kwargs: Any) -> Any:
        """``method url`` with the admin token; ``template``: its path in the description."""
        r = await self.sb.client.request(method, url, headers=self.sb.admin, **kwargs)
        operation = self.spec["paths"][template][method.lower()]
        answer = operation["responses"][str(r.status_code)]["content"]["application/json"]
        assert answer["schema"] != {"type": "object"}, f"{method} {template}: no struct"
        schema = {**answer["schema"], "components": self.spec["components"]}
        errors = list(Draft202012Validator(schema).iter_errors(r.json()))
        assert not errors, (method, template, errors[0].message, r.text[:300])
        self.checked.add((method, template))
        return r.json()


async def test_control_plane_answers_are_their_structs(sandbox: Sandbox) -> None:
    sb = sandbox
    d = Described(sb, (await sb.client.get("/_sandbox/openapi.json")).json())
    customer, token, agent_id = await sb.customer_with_agent()
    inbox = "/_sandbox/inbox/{name}"
    assert await d.ask("PUT", inbox, "/_sandbox/inbox/structs", json={"status": 200}) == {
        "inbox": "structs",
        "status": 200,
    }
    hook = await sb.client.post(
        "/v1/hooks",
        json={"event": "call.ended", "target_url": f"{sb.base_url}/_sandbox/inbox/structs"},
        headers=sb.bearer(token),
    )
    assert hook.status_code == 200
    call_id = await sb.place_call(token, agent_id, "+15005550008")
    await sb.wait_call(call_id)

    await d.ask("GET", "/_sandbox/accounts", "/_sandbox/accounts")
    view = await d.ask("GET", "/_sandbox/calls/{call_id}", f"/_sandbox/calls/{call_id}")
    assert view["talkSec"] > 0 and view["events"][-1]["event"] == "call.ended"
    listed = await d.ask(
        "GET", "/_sandbox/deliveries", f"/_sandbox/deliveries?customerId={customer}"
    )
    [delivery] = listed["deliveries"]
    assert delivery["payload"]["event"] == "call.ended"
    again = await d.ask(
        "POST",
        "/_sandbox/deliveries/{delivery_id}/redeliver",
        f"/_sandbox/deliveries/{delivery['id']}/redeliver",
    )
    assert again == {"id": delivery["id"], "status": "pending"}
    await d.ask("POST", "/_sandbox/clock/fast-forward", "/_sandbox/clock/fast-forward")
    await d.ask("GET", "/_sandbox/clock", "/_sandbox/clock")

    rule = {"operation": "listAgents", "action": "latency", "latencyMs": 1, "count": 1}
    made = await d.ask("POST", "/_sandbox/faults", "/_sandbox/faults", json=rule)
    assert (made["minMs"], made["maxMs"], made["remaining"]) == (1, 1, 1)
    assert "status" not in made  # the parameters of other actions are left out
    await d.ask("GET", "/_sandbox/faults", "/_sandbox/faults")
    one = await d.ask("DELETE", "/_sandbox/faults/{fault_id}", f"/_sandbox/faults/{made['id']}")
    assert one == {"id": made["id"], "deleted": True}
    assert await d.ask("DELETE", "/_sandbox/faults", "/_sandbox/faults") == {"deleted": 0}

    r = await d.ask("POST", inbox, "/_sandbox/inbox/structs", json={"hello": "world"})
    assert r == {"inbox": "structs", "received": True, "signature": "unsigned"}
    got = await d.ask("GET", inbox, "/_sandbox/inbox/structs")
    # The redelivered call.ended may land before or after this post: look for ours by body.
    assert {"hello": "world"} in [m["body"] for m in got["messages"]]
    assert got["messages"][0]["signatureVerified"] is True  # the call's webhook
    cleared = await d.ask("DELETE", inbox, "/_sandbox/inbox/structs")
    assert cleared == {"inbox": "structs", "cleared": True}

    token_id, _ = await sb.token_with_id(customer, ["read:balance"])
    gone = await d.ask("DELETE", "/_sandbox/tokens/{token_id}", f"/_sandbox/tokens/{token_id}")
    assert gone == {"id": token_id, "revoked": True}
    assert len(d.checked) == 15

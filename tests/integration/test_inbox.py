"""The built-in webhook inbox as a hook target: arrivals listed with signature checks, an
answer status to exercise retries."""

from __future__ import annotations

import time

from tests.support.sandbox import Sandbox


async def test_inbox_receives_verifies_and_can_fail_on_purpose(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    inbox = f"{sandbox.base_url}/_sandbox/inbox/demo-{customer}"
    r = await sandbox.client.post(
        "/v1/hooks",
        headers=sandbox.bearer(token),
        json={"event": "call.ended", "target_url": inbox},
    )
    hook_id = r.json()["id"]
    r = await sandbox.client.put(
        f"/_sandbox/inbox/demo-{customer}", json={"status": 503}, headers=sandbox.admin
    )
    assert r.json() == {"inbox": f"demo-{customer}", "status": 503}
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    await sandbox.wait_deliveries(lambda items: items and items[0]["attempts"], hookId=hook_id)
    await sandbox.client.put(
        f"/_sandbox/inbox/demo-{customer}", json={"status": 200}, headers=sandbox.admin
    )
    await sandbox.client.post("/_sandbox/clock/fast-forward", headers=sandbox.admin)
    [d] = await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] == "delivered", hookId=hook_id
    )
    codes = [a["statusCode"] for a in d["attempts"]]  # retries are fast at this time scale
    assert codes[-1] == 200
    assert set(codes[:-1]) == {503}
    r = await sandbox.client.get(f"/_sandbox/inbox/demo-{customer}", headers=sandbox.admin)
    box = r.json()
    assert (box["count"], box["status"]) == (len(codes), 200)
    assert [m["answered"] for m in box["messages"]] == codes
    for m in box["messages"]:
        assert m["signatureVerified"] is True
        assert m["signature"] == "verified"
        assert m["deliveryId"] == d["id"]
        assert m["event"] == "call.ended"
        assert m["body"]["event"] == "call.ended"
        assert m["headers"]["x-unlimcall-signature"].startswith("t=")


async def test_unsigned_and_forged_arrivals_are_flagged(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/_sandbox/inbox/forged", json={"event": "call.ended"})
    assert r.status_code == 200
    assert r.json()["signature"] == "unsigned"
    r = await sandbox.client.post(
        "/_sandbox/inbox/forged",
        content=b"not json",
        headers={"X-Unlimcall-Signature": "t=1,v1=" + "0" * 64, "X-Unlimcall-Delivery": "nope"},
    )
    assert r.json()["signature"] == "unknown_hook"
    box = (await sandbox.client.get("/_sandbox/inbox/forged", headers=sandbox.admin)).json()
    assert [m["signatureVerified"] for m in box["messages"]] == [False, False]
    assert box["messages"][1]["body"] == "not json"
    r = await sandbox.client.delete("/_sandbox/inbox/forged", headers=sandbox.admin)
    assert r.status_code == 200
    box = (await sandbox.client.get("/_sandbox/inbox/forged", headers=sandbox.admin)).json()
    assert box["count"] == 0


async def test_an_unparseable_signature_on_a_known_delivery_is_invalid(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    inbox = f"{sandbox.base_url}/_sandbox/inbox/sig-{customer}"
    r = await sandbox.client.post(
        "/v1/hooks",
        headers=sandbox.bearer(await sandbox.token(customer)),
        json={"event": "call.ended", "target_url": inbox},
    )
    hook_id = r.json()["id"]
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    [d] = await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] == "delivered", hookId=hook_id
    )
    r = await sandbox.client.post(
        f"/_sandbox/inbox/sig-{customer}",
        content=b"{}",
        headers={
            "X-Unlimcall-Signature": f"t={int(time.time())},v1=é".encode(),
            "X-Unlimcall-Delivery": d["id"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["signature"] == "invalid"


async def test_inbox_admin_routes_are_guarded_and_names_checked(sandbox: Sandbox) -> None:
    assert (await sandbox.client.get("/_sandbox/inbox/x")).status_code == 401
    assert (await sandbox.client.put("/_sandbox/inbox/x", json={"status": 500})).status_code == 401
    assert (await sandbox.client.delete("/_sandbox/inbox/x")).status_code == 401
    r = await sandbox.client.post("/_sandbox/inbox/" + "n" * 65, json={})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")
    r = await sandbox.client.put("/_sandbox/inbox/x", json={"status": 99}, headers=sandbox.admin)
    assert r.status_code == 400
    r = await sandbox.client.put(
        "/_sandbox/inbox/x", json={"status": 500, "extra": 1}, headers=sandbox.admin
    )
    assert r.status_code == 400

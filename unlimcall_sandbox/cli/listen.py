"""``unlimcall-sandbox listen``: like ``stripe listen``. Subscribes hooks for the chosen
events that point at a private inbox inside the sandbox, prints each delivery as it
arrives, and forwards it — same body, same signature headers — to ``--forward-to``.
Stops on Ctrl-C (or after ``--max-events``) and removes its hooks."""

from __future__ import annotations

import secrets
import signal
import sys
import time
from typing import Any

import httpx

FORWARDED_HEADERS = (
    "content-type",
    "x-unlimcall-signature",
    "x-unlimcall-event",
    "x-unlimcall-delivery",
    "user-agent",
)


def _say(text: str) -> None:
    print(text, flush=True)


def listen(
    base_url: str,
    admin_token: str,
    customer: str,
    events: list[str],
    forward_to: str,
    max_events: int | None = None,
    poll: float = 0.25,
) -> int:
    admin = httpx.Client(
        base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {admin_token}"}
    )
    inbox = f"listen-{secrets.token_hex(6)}"
    token = admin.post(f"/_sandbox/accounts/{customer}/tokens", json={"scopes": ["write:hooks"]})
    if token.status_code != 201:
        _say(f"listen: cannot mint a token for customer {customer}: {token.text}")
        return 1
    api = httpx.Client(
        base_url=f"{base_url}/v1",
        timeout=10,
        headers={"Authorization": f"Bearer {token.json()['token']}"},
    )
    hooks: list[str] = []
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    forwarded = 0
    try:
        for event in events:
            r = api.post(
                "/hooks", json={"event": event, "target_url": f"{base_url}/_sandbox/inbox/{inbox}"}
            )
            if r.status_code != 200:
                _say(f"listen: cannot subscribe {event}: {r.text}")
                return 1
            hooks.append(r.json()["id"])
            _say(f"Ready! {event} deliveries are signed with {r.json()['secret']}")
        _say(
            f"Forwarding {', '.join(events)} for customer {customer} to {forward_to} "
            "(Ctrl-C to stop)"
        )
        seen = 0
        with httpx.Client(timeout=10) as out:
            while not stop:
                messages = admin.get(f"/_sandbox/inbox/{inbox}", params={"limit": "1000"}).json()[
                    "messages"
                ]
                for message in messages[seen:]:
                    seen += 1
                    stamp = time.strftime("%H:%M:%S")
                    _say(f"{stamp}   --> {message['event']} [{message['deliveryId']}]")
                    headers = {
                        k: v for k, v in message["headers"].items() if k in FORWARDED_HEADERS
                    }
                    try:
                        answer = out.post(
                            forward_to, content=message["rawBody"].encode(), headers=headers
                        )
                        _say(f"{stamp}  <--  [{answer.status_code}] POST {forward_to}")
                    except httpx.HTTPError as exc:
                        _say(f"{stamp}  <--  [ERR] POST {forward_to}: {exc}")
                    forwarded += 1
                    if max_events is not None and forwarded >= max_events:
                        stop = True
                        break
                if not stop:
                    time.sleep(poll)
    finally:
        for hook_id in hooks:
            api.delete(f"/hooks/{hook_id}")
        admin.delete(f"/_sandbox/inbox/{inbox}")
        api.close()
        admin.close()
    _say(f"Stopped after forwarding {forwarded} deliveries; hooks removed.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)

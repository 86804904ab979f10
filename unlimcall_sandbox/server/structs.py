"""Wire structs: every JSON body the sandbox reads or writes is one of these.

``Wire`` is the base: responses omit nothing the contract requires. Request structs for the
control plane forbid unknown fields (a typo should fail loudly); ``/v1`` request bodies are
parsed by hand in the services, because the contract answers ``invalid_input`` with its own
messages rather than msgspec's.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


class Wire(msgspec.Struct, kw_only=True):
    """Base of response bodies (field names exactly as the contract spells them)."""


class Closed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of control-plane request bodies: unknown fields are a 400, not silently dropped."""


class Sparse(Wire, omit_defaults=True):
    """Base of response bodies with fields that only some items have (left out, not null)."""


class Me(Wire):
    customerId: str
    companyName: str
    primaryContactEmail: str


class Balance(Wire):
    balance: float
    currency: str
    accountType: str
    creditLimit: float | None
    blocked: bool
    stale: bool


class Cdr(Wire):
    id: str
    startTime: str
    duration: int
    billsec: int
    src: str
    dst: str
    disposition: str
    sipUsername: str
    sellPriceCents: int
    currency: str
    country: str
    did: str | None


class Agent(Wire):
    id: str
    sipUsername: str
    label: str
    createdAt: str


class AgentList(Wire):
    count: int
    agents: list[Agent]


class CallQueued(Wire):
    callId: str
    status: str


class HookCreated(Wire):
    id: str
    secret: str


# ---- control plane -------------------------------------------------------------------

AccountType = Literal["prepaid", "postpaid"]


class AccountCreate(Closed):
    companyName: str
    primaryContactEmail: str
    accountType: AccountType = "prepaid"
    balance: float = 0.0
    currency: str = "USD"
    creditLimit: float | None = None


class AccountPatch(Closed):
    status: Literal["active", "suspended"] | UnsetType = UNSET
    provisioned: bool | UnsetType = UNSET
    dialerEnabled: bool | UnsetType = UNSET
    engineConfigured: bool | UnsetType = UNSET
    balance: float | UnsetType = UNSET
    creditLimit: float | UnsetType | None = UNSET
    balanceUpstream: Literal["ok", "failing", "stale"] | UnsetType = UNSET
    companyName: str | UnsetType = UNSET
    primaryContactEmail: str | UnsetType = UNSET
    accountType: AccountType | UnsetType = UNSET


class AccountView(Wire):
    customerId: str
    companyName: str
    primaryContactEmail: str
    accountType: str
    balance: float
    currency: str
    creditLimit: float | None
    status: str
    provisioned: bool
    dialerEnabled: bool
    engineConfigured: bool
    balanceUpstream: str
    blocked: bool
    createdAt: str


class TokenCreate(Closed):
    scopes: list[str] = msgspec.field(default_factory=list)
    expiresIn: int | None = None


class TokenCreated(Wire):
    id: str
    token: str
    prefix: str
    scopes: list[str]
    expiresAt: str | None


class OAuthClientCreate(Closed):
    scopes: list[str] = msgspec.field(default_factory=list)


class OAuthClientCreated(Wire):
    clientId: str
    clientSecret: str
    scopes: list[str]


class AgentCreate(Closed):
    label: str
    sipUsername: str | None = None
    provisioned: bool = True
    callerId: str | None = None
    did: str | None = None


class AgentView(Wire):
    id: str
    sipUsername: str
    label: str
    createdAt: str
    provisioned: bool
    callerId: str
    did: str | None


class CdrGenerate(Closed):
    count: int
    from_: str | None = msgspec.field(default=None, name="from")
    till: str | None = None


class BulkJobView(Wire):
    """A long control-plane job (``GET /_sandbox/jobs/{id}``; also the 202 that starts it)."""

    jobId: str
    kind: str
    state: str
    """``queued``, ``running``, ``done`` or ``failed``."""
    done: int
    total: int
    etaSeconds: float | None
    """Wall seconds left at the rate so far (None until there is a rate; 0 once done)."""
    customerId: str | None
    count: int
    fromTime: str | None
    tillTime: str | None
    createdAt: str
    finishedAt: str | None
    error: str | None


class AccountList(Wire):
    count: int
    accounts: list[AccountView]


class TokenRevoked(Wire):
    id: str
    revoked: bool


class CallView(Wire):
    """A call as the control plane shows it: state, timestamps, plan and events."""

    callId: str
    customerId: str
    aiAgentId: str
    toNumber: str
    fromNumber: str | None
    state: str
    outcome: str
    scenario: str
    ringSec: int
    talkSec: int
    sentiment: str
    createdAt: str
    ringingAt: str | None
    answeredAt: str | None
    endedAt: str | None
    nextStepAt: str | None
    events: list[dict[str, Any]]
    """The delivered bodies of its events, as the contract's webhooks describe them."""


class AttemptView(Wire):
    number: int
    attemptedAt: str
    statusCode: int | None
    latencyMs: int
    error: str | None
    responseBody: str | None
    outcome: str
    nextAttemptAt: str | None


class DeliveryView(Wire):
    id: str
    hookId: str
    eventId: str
    event: str
    customerId: str
    targetUrl: str
    status: str
    attempts: list[AttemptView]
    createdAt: str
    nextAttemptAt: str | None
    payload: dict[str, Any]


class DeliveryList(Wire):
    count: int
    deliveries: list[DeliveryView]


class Redelivery(Wire):
    id: str
    status: str


class FastForwarded(Wire):
    calls: int
    deliveries: int
    sandboxTime: str


class ClockAdvanced(Wire):
    """What ``POST /_sandbox/clock/advance`` (and fast-forward) did: sandbox time now, how
    far it moved, the call transitions run (``steps``, over ``calls`` calls) and the webhook
    attempts queued (``deliveries``)."""

    sandboxTime: str
    advancedSec: float
    calls: int
    steps: int
    deliveries: int


class ClockView(Wire):
    sandboxTime: str
    scale: float


class FaultRule(Sparse):
    """A fault rule; the parameters of its action sit beside the common fields."""

    id: str
    target: str
    operation: str | None
    customerId: str | None
    action: str
    probability: float
    remaining: int | None
    fired: int
    createdAt: str
    status: int | UnsetType = UNSET
    """error rules"""
    error: str | UnsetType = UNSET
    """error rules"""
    minMs: int | UnsetType = UNSET
    """latency rules"""
    maxMs: int | UnsetType = UNSET
    """latency rules"""
    delayMs: int | UnsetType = UNSET
    """late and out_of_order rules"""


class FaultList(Wire):
    count: int
    faults: list[FaultRule]


class FaultDeleted(Wire):
    id: str
    deleted: bool


class FaultsDeleted(Wire):
    deleted: int


class ResetDone(Wire):
    reset: bool
    customerId: str
    demoToken: str


class InboxReceipt(Wire):
    inbox: str
    received: bool
    signature: str
    """verified | invalid | unsigned | unknown_hook"""


class InboxMessage(Wire):
    receivedAt: str
    method: str
    headers: dict[str, str]
    body: Any
    """The body as JSON when it parses, else as text."""
    flags: list[str]
    """``raw``: the body is not JSON, or nested too deeply to parse (``body`` is the text);
    ``truncated``: the body was cut at ``UNLIMCALL_INBOX_MESSAGE_BYTES``;
    ``headers_truncated``: so were the headers."""
    rawBody: str
    deliveryId: str | None
    event: str | None
    signature: str
    signatureVerified: bool
    answered: int


class InboxView(Wire):
    inbox: str
    status: int
    count: int
    messages: list[InboxMessage]


class InboxConfigured(Wire):
    inbox: str
    status: int


class InboxCleared(Wire):
    inbox: str
    cleared: bool


class Health(Wire):
    status: str


class Readiness(Wire):
    status: str
    database: str
    redis: str

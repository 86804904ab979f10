"""Wire structs: every JSON body the sandbox reads or writes is one of these.

``Wire`` is the base: responses omit nothing the contract requires. Request structs for the
control plane forbid unknown fields (a typo should fail loudly); ``/v1`` request bodies are
parsed by hand in the services, because the contract answers ``invalid_input`` with its own
messages rather than msgspec's.
"""

from __future__ import annotations

from typing import Literal

import msgspec

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


class Wire(msgspec.Struct, kw_only=True):
    """Base of response bodies (field names exactly as the contract spells them)."""


class Closed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of control-plane request bodies: unknown fields are a 400, not silently dropped."""


class ErrorBody(Wire):
    error: str
    message: str


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


class CdrList(Wire):
    count: int
    calls: list[Cdr]


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


class CdrGenerated(Wire):
    customerId: str
    count: int
    fromTime: str
    tillTime: str

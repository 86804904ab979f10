"""Rating: destination number → country and sell price. Pure: the rate table and the
country names are data, loaded once at start-up (``runtime.load_rate_table``) and passed in.

Price = ceil(billsec × centsPerMinute / 60) whole cents (billed per second, rounded up),
zero when nothing was billed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Any

import phonenumbers


@dataclass(frozen=True, slots=True)
class Rate:
    region: str
    country: str
    cents_per_minute: Decimal


@dataclass(frozen=True, slots=True)
class RateTable:
    currency: str
    rates: Mapping[str, Rate]
    """By ISO 3166-1 region code; ``"*"`` for every other country."""
    country_names: Mapping[str, str]
    """English country names by region code, for destinations the ``"*"`` rate prices."""

    def rate_for(self, e164: str) -> Rate:
        region = region_of(e164)
        rate = self.rates.get(region) or self.rates["*"]
        if rate.region == "*":
            name = self.country_names.get(region, "") or rate.country
            return Rate(region=region or "*", country=name, cents_per_minute=rate.cents_per_minute)
        return rate


def price_cents(billsec: int, cents_per_minute: Decimal) -> int:
    if billsec <= 0:
        return 0
    cents = (Decimal(billsec) * cents_per_minute / Decimal(60)).quantize(
        Decimal(1), rounding=ROUND_CEILING
    )
    return int(cents)


@lru_cache(maxsize=4096)
def region_of(e164: str) -> str:
    """The ISO region of an E.164 number ("" when none). Cached: a phonenumbers parse costs
    ~50 µs, and a call needs its region three times (hold, talk limit, price)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    return phonenumbers.region_code_for_number(number) or ""


def rate_table(rates: Mapping[str, Any], country_names: Mapping[str, Any]) -> RateTable:
    """The table from its two documents (``fixtures/rates.json`` and
    ``fixtures/country_names.json``, parsed). Country names come from a shipped table:
    phonenumbers' geocoder would load ~100 MB of prefix data for the same answer."""
    table = {
        region: Rate(
            region=region, country=v["name"], cents_per_minute=Decimal(v["centsPerMinute"])
        )
        for region, v in rates["rates"].items()
    }
    if "*" not in table:
        raise ValueError("rate table needs a '*' entry")
    names = {str(k): str(v) for k, v in country_names["names"].items()}
    return RateTable(currency=rates["currency"], rates=table, country_names=names)

"""Rating: destination number → country and sell price. Pure; the rate table is data.

Price = ceil(billsec × centsPerMinute / 60) whole cents (billed per second, rounded up),
zero when nothing was billed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from importlib.resources.abc import Traversable

import phonenumbers

from unlimcall_sandbox.resources import FIXTURES


@dataclass(frozen=True, slots=True)
class Rate:
    region: str
    country: str
    cents_per_minute: Decimal


@dataclass(frozen=True, slots=True)
class RateTable:
    currency: str
    rates: dict[str, Rate]

    def rate_for(self, e164: str) -> Rate:
        region = region_of(e164)
        rate = self.rates.get(region) or self.rates["*"]
        if rate.region == "*":
            name = country_name(e164) or rate.country
            return Rate(region=region or "*", country=name, cents_per_minute=rate.cents_per_minute)
        return rate


def price_cents(billsec: int, cents_per_minute: Decimal) -> int:
    if billsec <= 0:
        return 0
    cents = (Decimal(billsec) * cents_per_minute / Decimal(60)).quantize(
        Decimal(1), rounding=ROUND_CEILING
    )
    return int(cents)


def region_of(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    return phonenumbers.region_code_for_number(number) or ""


def country_name(e164: str) -> str:
    """English name of the number's country ("" when it has none). From a shipped table:
    phonenumbers' geocoder would load ~100 MB of prefix data for the same answer."""
    return _country_names().get(region_of(e164), "")


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    data = json.loads((FIXTURES / "country_names.json").read_text(encoding="utf-8"))
    names: dict[str, str] = data["names"]
    return names


def load_rate_table(path: Traversable | None = None) -> RateTable:
    raw = json.loads((path or FIXTURES / "rates.json").read_text(encoding="utf-8"))
    rates = {
        region: Rate(
            region=region, country=v["name"], cents_per_minute=Decimal(v["centsPerMinute"])
        )
        for region, v in raw["rates"].items()
    }
    if "*" not in rates:
        raise ValueError("rate table needs a '*' entry")
    return RateTable(currency=raw["currency"], rates=rates)


@lru_cache(maxsize=1)
def default_rate_table() -> RateTable:
    return load_rate_table()

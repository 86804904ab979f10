import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlimcall_sandbox.server.errors import (
    InvalidInput,
    InvalidTimestamp,
    TillMustBeAfterFrom,
    WindowTooWide,
)
from unlimcall_sandbox.server.phone import is_e164
from unlimcall_sandbox.server.rating import price_cents, rate_table, region_of
from unlimcall_sandbox.server.runtime import load_rate_table
from unlimcall_sandbox.server.services.cdrs import parse_limit, parse_timestamp, parse_window

NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_prices() -> None:
    assert price_cents(0, Decimal("2.5")) == 0
    assert price_cents(1, Decimal("2.5")) == 1
    assert price_cents(60, Decimal("2.5")) == 3
    assert price_cents(81, Decimal("12.0")) == 17


def test_rating_uses_only_the_data_it_is_given() -> None:
    table = rate_table(
        {
            "currency": "USD",
            "rates": {
                "GB": {"name": "Britain", "centsPerMinute": "1.5"},
                "*": {"name": "Elsewhere", "centsPerMinute": "9"},
            },
        },
        {"names": {"ZA": "Mzansi"}},
    )
    gb = table.rate_for("+442071838750")
    assert (gb.region, gb.country, gb.cents_per_minute) == ("GB", "Britain", Decimal("1.5"))
    za = table.rate_for("+27211234567")  # priced by '*', named from the names given
    assert (za.region, za.country, za.cents_per_minute) == ("ZA", "Mzansi", Decimal(9))
    de = table.rate_for("+4930123456")  # '*' and no name: the '*' entry's
    assert (de.region, de.country) == ("DE", "Elsewhere")
    nowhere = table.rate_for("+999")
    assert (nowhere.region, nowhere.country) == ("*", "Elsewhere")
    with pytest.raises(ValueError, match=r"'\*'"):
        rate_table({"currency": "USD", "rates": {}}, {"names": {}})


def test_the_shipped_table_loads_once_with_its_names() -> None:
    table = load_rate_table()
    assert table.currency == "USD"
    assert table.rate_for("+442071838750").country == "United Kingdom"
    assert table.rate_for("+27211234567").country == "South Africa"  # the '*' rate
    assert region_of("+27211234567") == "ZA"
    assert len(table.country_names) > 200


@given(
    st.integers(min_value=0, max_value=10**6), st.decimals(min_value=0, max_value=1000, places=3)
)
def test_price_is_never_negative_and_rounds_up_consistently(billsec: int, rate: Decimal) -> None:
    cents = price_cents(billsec, rate)
    assert cents >= 0
    exact = Decimal(billsec) * rate / 60
    assert exact <= cents < exact + 1
    assert price_cents(billsec + 1, rate) >= cents


@pytest.mark.parametrize("good", ["+14155551234", "+442071838750", "+4930123456", "+15005550001"])
def test_e164_accepts(good: str) -> None:
    assert is_e164(good)


@pytest.mark.parametrize(
    "bad",
    [
        "14155551234",
        "+1",
        "+",
        "",
        "+0123456789",
        "+1 415 555 1234",
        "+1415555123456789",
        "+1-415-555-1234",
        "tel:+14155551234",
        "+14155551234\x00",
        "＋14155551234",
        "+١٤١٥٥٥٥١٢٣٤",
    ],
)
def test_e164_refuses(bad: str) -> None:
    assert not is_e164(bad)


@given(st.text(max_size=30))
def test_e164_never_raises(value: str) -> None:
    result = is_e164(value)
    if result:
        assert value.startswith("+") and value[1:].isdigit() and value[1:].isascii()


def test_window_defaults_and_boundaries() -> None:
    start, till, limit = parse_window(None, None, None, NOW)
    assert (till - start, till, limit) == (86400, NOW, 100)
    t = datetime.fromtimestamp(NOW, UTC)
    assert parse_window(iso(t - timedelta(days=31)), iso(t), "1000", NOW)[2] == 1000
    with pytest.raises(WindowTooWide):
        parse_window(iso(t - timedelta(days=31, seconds=1)), iso(t), None, NOW)
    with pytest.raises(TillMustBeAfterFrom):
        parse_window(iso(t), iso(t), None, NOW)
    with pytest.raises(InvalidTimestamp):
        parse_window("2026-02-30T00:00:00Z", None, None, NOW)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=-40 * 86400, max_value=40 * 86400),
)
def test_window_rules_hold_for_any_pair(start: datetime, span: int) -> None:
    till = start + timedelta(seconds=span)
    try:
        lo, hi, _ = parse_window(iso(start), iso(till), None, NOW)
    except TillMustBeAfterFrom:
        assert span <= 0
    except WindowTooWide:
        assert span > 31 * 86400
    else:
        assert 0 < hi - lo == span <= 31 * 86400


RFC3339_LIKE = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"


@given(st.one_of(st.text(max_size=40), st.from_regex(RFC3339_LIKE, fullmatch=True)))
def test_timestamps_parse_or_raise_the_contract_error(raw: str) -> None:
    """Any text (and any date-time-shaped text, month 13 included) either parses to a
    moment or raises the contract's error, never another exception."""
    try:
        ts = parse_timestamp(raw)
    except InvalidTimestamp:
        assert not re.fullmatch(RFC3339_LIKE, raw) or not _valid_date_time(raw)
        return
    assert isinstance(ts, float)
    assert math.isfinite(ts)
    assert re.fullmatch(RFC3339_LIKE, raw)


def _valid_date_time(raw: str) -> bool:
    try:
        datetime.fromisoformat(re.sub(r"(\.\d{1,6})\d*", r"\1", raw.upper().replace("Z", "+00:00")))
    except ValueError:
        return False
    return True


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_timestamps_in_the_contracts_form_parse_to_their_moment(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_timestamp(iso(moment)) == moment.timestamp()


@pytest.mark.parametrize(
    "bad", ["", "yesterday", "2026-02-30T00:00:00Z", "2026-06-01T25:00:00Z", "1717200000"]
)
def test_timestamps_that_are_no_moment_raise_the_contract_error(bad: str) -> None:
    with pytest.raises(InvalidTimestamp):
        parse_timestamp(bad)


@given(st.text(max_size=12))
def test_limit_is_an_int_in_range_or_invalid_input(raw: str) -> None:
    try:
        value = parse_limit(raw)
    except InvalidInput:
        return
    assert 1 <= value <= 1000

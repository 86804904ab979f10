import contextlib
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
from unlimcall_sandbox.server.rating import default_rate_table, price_cents
from unlimcall_sandbox.server.services.cdrs import parse_limit, parse_timestamp, parse_window

NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_prices() -> None:
    assert price_cents(0, Decimal("2.5")) == 0
    assert price_cents(1, Decimal("2.5")) == 1
    assert price_cents(60, Decimal("2.5")) == 3
    assert price_cents(81, Decimal("12.0")) == 17
    table = default_rate_table()
    assert table.rate_for("+442071838750").country == "United Kingdom"
    assert table.rate_for("+27211234567").country == "South Africa"  # the '*' rate


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


@given(st.text(max_size=40))
def test_timestamps_parse_or_raise_the_contract_error(raw: str) -> None:
    with contextlib.suppress(InvalidTimestamp):
        parse_timestamp(raw)


@given(st.text(max_size=12))
def test_limit_is_an_int_in_range_or_invalid_input(raw: str) -> None:
    try:
        value = parse_limit(raw)
    except InvalidInput:
        return
    assert 1 <= value <= 1000

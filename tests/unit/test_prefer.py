"""``server.prefer``: what a Prefer header (or a fault rule) may force is the very error a
service raises for that code, with the status the contract lists it under."""

from __future__ import annotations

import pytest

from unlimcall_sandbox.server.errors import ApiError, Unauthorized
from unlimcall_sandbox.server.prefer import FORCEABLE, InvalidPrefer, parse, resolve

CASES = [
    (op, status, code)
    for op, table in FORCEABLE.items()
    for status, codes in table.items()
    for code in codes
]


@pytest.mark.parametrize(("operation", "status", "code"), CASES)
def test_a_forced_answer_is_the_services_error(operation: str, status: int, code: str) -> None:
    forced = resolve(operation, status, code)
    assert forced is not None
    error = forced.error()
    assert isinstance(error, ApiError) and type(error) is not ApiError
    assert (error.status, error.code) == (status, code)
    assert error.message.endswith("(forced by the Prefer header)")
    if status == 401:
        assert isinstance(error, Unauthorized)
        assert error.headers["WWW-Authenticate"].startswith('Bearer realm="unlimcall"')
    else:
        assert error.headers == {}


def test_parse_reads_both_preferences_and_ignores_others() -> None:
    assert parse("return=minimal, code=409; error=dialer_required") == (409, "dialer_required")
    assert parse('respond-async, error="unauthorized"') == (None, "unauthorized")
    with pytest.raises(InvalidPrefer):
        parse("code=4xx")


def test_nothing_asked_is_nothing_forced() -> None:
    assert resolve("getMe", None, None) is None
    with pytest.raises(InvalidPrefer):
        resolve("getMe", 500, None)

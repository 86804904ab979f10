"""``server.prefer``: what a Prefer header (or a fault rule) may force is the very error a
service raises for that code, with the status the contract lists it under; anything else
is ``Unusable``, with a reason fit for a response header."""

from __future__ import annotations

import pytest

from unlimcall_sandbox.server.errors import ApiError, Unauthorized
from unlimcall_sandbox.server.prefer import APPLIED, FORCEABLE, Unusable, parse, resolve

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
    assert error.headers[APPLIED] == f"code={status}, error={code}"
    if status == 401:
        assert isinstance(error, Unauthorized)
        assert error.headers["WWW-Authenticate"].startswith('Bearer realm="unlimcall"')
    else:
        assert set(error.headers) == {APPLIED}


def test_parse_reads_both_preferences_and_ignores_others() -> None:
    assert parse("return=minimal, code=409; error=dialer_required") == (409, "dialer_required")
    assert parse('respond-async, error="unauthorized"') == (None, "unauthorized")
    # RFC 7240 §2: the first instance of a preference counts.
    assert parse("code=401, code=403, error=a, error=b") == (401, "a")
    with pytest.raises(Unusable, match=r'code="4xx" is not an HTTP status'):
        parse("code=4xx")


def test_nothing_asked_is_nothing_forced() -> None:
    assert resolve("getMe", None, None) is None


@pytest.mark.parametrize(
    ("operation", "status", "code", "reason"),
    [
        ("getMe", 500, None, "getMe lists no 500; it can be forced to: code=401"),
        ("getBalance", 403, None, "getBalance lists no 403;"),
        ("getBalance", None, "account_suspended", 'getBalance lists no error="account_suspended"'),
        ("originateCall", 409, "originate_failed", 'no error="originate_failed" under 409'),
    ],
)
def test_what_the_operation_does_not_list_is_unusable(
    operation: str, status: int | None, code: str | None, reason: str
) -> None:
    with pytest.raises(Unusable) as caught:
        resolve(operation, status, code)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "header", ["code=4\r\nX: y", "error=\u00e9\u2028" + "x" * 100, 'code="1"2"']
)
def test_reasons_are_safe_header_values(header: str) -> None:
    """What the client sent is repeated only as printable ASCII, and at most 32 chars."""
    with pytest.raises(Unusable) as caught:
        resolve("getMe", *parse(header))
    reason = caught.value.reason
    assert reason.isascii() and reason.isprintable(), reason
    assert len(reason) < 200

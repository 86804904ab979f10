import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from unlimcall_sandbox import verify_signature
from unlimcall_sandbox.server.signing import compute_signature, sign

SECRET = "whsec_2VR9aBcDeFgHiJkLmNoPqRsTuVwXyZ01"


def test_known_vector() -> None:
    body = b'{"event":"call.ended"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1700000000, body) == expected
    assert sign(SECRET, body, 1700000000) == f"t=1700000000,v1={expected}"


def test_tolerance_and_format() -> None:
    body = b"{}"
    header = sign(SECRET, body, 1000)
    assert verify_signature(SECRET, header, body, now=1000 + 300)
    assert not verify_signature(SECRET, header, body, now=1000 + 301)
    assert not verify_signature(SECRET, header, body, now=1000 - 301)
    assert verify_signature(SECRET, header, body, tolerance=0, now=10**9)
    assert verify_signature(SECRET, header, body.decode(), now=1000)
    for broken in ("", "t=1000", "v1=abc", "t=x,v1=abc", "garbage", header.replace("t=", "T=")):
        assert not verify_signature(SECRET, broken, body, now=1000)
    rotated = f"{header},v1={'0' * 64}"
    assert verify_signature(SECRET, rotated, body, now=1000)


@given(st.binary(max_size=2048), st.integers(min_value=0, max_value=2**31), st.data())
def test_sign_then_verify_and_any_changed_byte_fails(
    body: bytes, t: int, data: st.DataObject
) -> None:
    header = sign(SECRET, body, t)
    assert verify_signature(SECRET, header, body, now=t)
    if body:
        i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        flipped = body[:i] + bytes([body[i] ^ (1 << data.draw(st.integers(0, 7)))]) + body[i + 1 :]
        assert not verify_signature(SECRET, header, flipped, now=t)
    assert not verify_signature(SECRET + "x", header, body, now=t)
    assert not verify_signature(SECRET, sign(SECRET, body, t + 1), body + b" ", now=t)


@given(st.one_of(st.text(), st.binary()), st.one_of(st.text(), st.binary()))
def test_any_header_is_a_verdict_never_an_exception(header: str | bytes, body: str | bytes) -> None:
    assert verify_signature(SECRET, header, body, tolerance=0) is False


def test_non_ascii_and_oversized_values_are_false() -> None:
    now = 1_700_000_000
    for header in (
        f"t={now},v1=é",
        f"t={now},v1=" + "é" * 64,
        "t=١٧٠٠٠٠٠٠٠٠,v1=" + "0" * 64,  # non-ASCII digits
        "t=" + "9" * 5000 + ",v1=" + "0" * 64,  # past int()'s digit limit
        f"t={now},v1=abc".encode() + b"\xff",
    ):
        assert verify_signature(SECRET, header, b"{}", now=now) is False

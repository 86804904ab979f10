"""Derived ids: the same seed and parts give the same id as ``uuid.uuid5`` would."""

from __future__ import annotations

import uuid

import pytest

from unlimcall_sandbox.server import ids


@pytest.mark.parametrize(
    ("seed", "parts"),
    [(0, ("call", 1)), (7, ("call", 123456)), (2**40, ("hook", "abc", 3)), (7, ("event",))],
)
def test_derived_uuid_is_uuid5_of_the_seed_and_parts(seed: int, parts: tuple[object, ...]) -> None:
    name = ":".join([str(seed), *map(str, parts)])
    expected = str(uuid.uuid5(uuid.UUID("6b1c3f0e-8d57-4d3a-9a8f-2f0c5e7d9b11"), name))
    assert ids.derived_uuid(seed, *parts) == expected
    assert uuid.UUID(expected).version == 5

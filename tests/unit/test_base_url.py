"""Which Host a discovery document may echo (``server.base_url``), and the setting that
widens it (``UNLIMCALL_ALLOWED_HOSTS``)."""

from __future__ import annotations

from unlimcall_sandbox.server.base_url import base_for
from unlimcall_sandbox.server.settings import Settings


def test_only_loopback_the_bind_address_and_allowed_hosts_are_echoed() -> None:
    plain = Settings()
    assert base_for(plain, "http", "localhost:8080") == "http://localhost:8080"
    assert base_for(plain, "http", "[::1]:8080") == "http://[::1]:8080"
    for hostile in ("evil.example", "evil.example:8080", "localhost.evil.example", "10.1.2.3"):
        assert base_for(plain, "http", hostile) == "http://127.0.0.1:8080", hostile
    allowed = Settings(allowed_hosts=("sandbox.ci", "10.1.2.3"))
    assert base_for(allowed, "http", "SANDBOX.CI:9000") == "http://sandbox.ci:9000"
    assert base_for(allowed, "https", "10.1.2.3") == "https://10.1.2.3"
    assert base_for(allowed, "http", "other.ci") == "http://127.0.0.1:8080"
    assert base_for(allowed, "http", "sandbox.ci.evil.example") == "http://127.0.0.1:8080"
    public = Settings(public_url="https://sandbox.example.test", allowed_hosts=("sandbox.ci",))
    assert base_for(public, "http", "sandbox.ci") == "https://sandbox.example.test"


def test_allowed_hosts_parse_like_the_other_lists() -> None:
    settings = Settings.from_env({"UNLIMCALL_ALLOWED_HOSTS": " Sandbox.CI, ,api.test "})
    assert settings.allowed_hosts == ("sandbox.ci", "api.test")
    assert Settings.from_env({}).allowed_hosts == ()

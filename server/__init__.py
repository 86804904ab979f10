"""UnlimCall Sandbox: a stateful, contract-exact stand-in for the UnlimCall REST API."""

from server.signing import verify_signature

__all__ = ["verify_signature"]

"""UnlimCall Sandbox: a stateful, contract-exact stand-in for the UnlimCall REST API.

``from unlimcall_sandbox import verify_signature`` checks a webhook's signature the way a
receiver should.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from unlimcall_sandbox.server.signing import verify_signature

try:
    __version__ = _version("unlimcall-sandbox")
except PackageNotFoundError:  # pragma: no cover - imported from a tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "verify_signature"]

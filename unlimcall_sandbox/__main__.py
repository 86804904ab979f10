"""``python -m unlimcall_sandbox`` is the ``unlimcall-sandbox`` command."""

from unlimcall_sandbox.cli.main import main

raise SystemExit(main())

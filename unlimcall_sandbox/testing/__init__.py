"""For test suites (integrators' and this repository's own): the pytest plugin (installed
as a ``pytest11`` entry point) and ``launch_sandbox()`` (``testing.launch``), which starts
a sandbox process and stops it."""

"""For integrators' test suites: the pytest plugin (installed as a ``pytest11`` entry
point)."""

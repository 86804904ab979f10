"""The command line: ``unlimcall-sandbox`` (``main``) and ``listen``. The composition root:
it builds ``Settings`` once and wires the API side (``server``) to the worker side
(``workers``)."""

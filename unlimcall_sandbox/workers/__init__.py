"""The arq side: jobs that play calls out and deliver webhooks (``jobs``), the delivery
pipeline they call (``delivery``), the sweep, and the worker that runs them (``worker``).

``workers`` may import ``server``; ``server`` never imports ``workers`` (it enqueues jobs
by name). ``make lint`` enforces it.
"""

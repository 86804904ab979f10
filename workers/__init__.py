"""The arq side: jobs that play calls out and deliver webhooks, the sweep, the CLI.

``workers`` may import ``server``; ``server`` never imports ``workers`` (it enqueues jobs
by name). That is also why the command line lives here: it composes both.
"""

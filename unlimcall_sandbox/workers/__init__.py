"""The arq side: jobs that play calls out and deliver webhooks, and the sweep.

``workers`` may import ``server``; ``server`` never imports ``workers`` (it enqueues jobs
by name).
"""

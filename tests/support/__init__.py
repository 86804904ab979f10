"""Test support: the contract checker, the sandbox harness, the webhook receiver."""

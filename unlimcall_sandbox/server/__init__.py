"""The API side: app factory, settings, database, auth, controllers, control plane, and the
services they call."""

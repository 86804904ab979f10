"""Storage: Core tables, the async engine, migrations and the transaction helpers."""

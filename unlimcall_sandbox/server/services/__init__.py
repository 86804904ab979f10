"""Business rules, one module per aggregate; every SQL statement lives here."""

"""Test support: a throw-away PostgreSQL server, database fixtures, synthetic data builders."""

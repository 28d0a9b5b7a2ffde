"""End-to-end tests of the HTTP API (through FastAPI, on SQLite and PostgreSQL)."""

"""Plain domain types. Imports only the standard library."""

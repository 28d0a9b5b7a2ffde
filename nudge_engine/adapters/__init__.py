"""Adapters: SQLAlchemy storage, unit of work. Implement the ports the services use."""

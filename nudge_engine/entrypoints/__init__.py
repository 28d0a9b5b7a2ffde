"""Entry points: the CLI, the HTTP API and the scheduler. They call services; nothing calls them."""

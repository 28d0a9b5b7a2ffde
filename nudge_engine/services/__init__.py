"""Use cases. Each runs in one unit of work: the state change and its audit records commit together."""

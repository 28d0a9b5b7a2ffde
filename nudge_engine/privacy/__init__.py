"""Privacy by construction: the encrypted identifier store, key handling, erasure and de-identification."""

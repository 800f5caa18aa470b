"""Adapters: SQL, the secrets cipher, the HTTP sender."""

"""Fixtures for the whole stack through the gateway: job-api and data-service on one test
database server (each its own database and role), one broker namespace, nginx on an ephemeral
port rendered by scripts/gateway.sh."""

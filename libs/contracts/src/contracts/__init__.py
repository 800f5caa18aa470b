"""Shared contracts: enums, the base-model catalogue, event payloads, routing keys and queues."""

"""Messaging plumbing every service reuses: topology, outbox relay, inbox consumers, request/reply."""

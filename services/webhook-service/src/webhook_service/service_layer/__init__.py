"""Use cases: webhook commands and reads, deliveries from events, the sender."""

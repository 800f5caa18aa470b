"""Commands and event handlers; the unit of work."""

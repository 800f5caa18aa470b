"""One function per command or event; the entry point owns the transaction (unit of work)."""

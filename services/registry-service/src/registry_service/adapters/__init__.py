"""SQL tables and repositories, the Hub client."""

"""SQL repositories, the unit of work, and the broker-facing pieces of job-api."""

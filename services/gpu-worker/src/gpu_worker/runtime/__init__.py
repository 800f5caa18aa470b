"""The worker runtime: broker link, claim, data download, reporting, one job at a time."""

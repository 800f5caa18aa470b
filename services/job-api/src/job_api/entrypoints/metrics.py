"""Prometheus metrics of job-api, served at /metrics."""

from prometheus_client import Counter

JOBS_CREATED = Counter(
    "ftd_jobs_created_total", "Jobs accepted (201).", ["job_type", "gpu_provider"]
)
CLAIMS = Counter("ftd_claims_total", "Claim requests answered, by outcome.", ["outcome"])
WORKER_EVENTS = Counter(
    "ftd_worker_events_total", "Worker events consumed, by outcome.", ["outcome"]
)
LEASES_EXPIRED = Counter("ftd_leases_expired_total", "Running attempts whose lease expired.")

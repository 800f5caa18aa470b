"""Prometheus counters of data-service (incremented only after the transaction committed)."""

from prometheus_client import Counter

UPLOADS = Counter(
    "data_service_uploads_total",
    "Uploads by outcome (stored, dry_run, invalid, too_large).",
    ["outcome"],
)
UPLOADED_BYTES = Counter("data_service_uploaded_bytes_total", "Bytes of stored datasets.")

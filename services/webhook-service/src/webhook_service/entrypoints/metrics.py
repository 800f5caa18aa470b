"""Prometheus metrics of webhook-service, served at /metrics."""

from prometheus_client import Counter

DELIVERIES_CREATED = Counter(
    "ftd_webhook_deliveries_created_total", "Deliveries written from events (one per webhook)."
)
ATTEMPTS = Counter(
    "ftd_webhook_attempts_total",
    "Delivery attempts, by what the delivery came to after it.",
    ["outcome"],
)

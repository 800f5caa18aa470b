"""Prometheus metrics of registry-service, served at /metrics."""

from prometheus_client import Counter

MODELS_REGISTERED = Counter(
    "ftd_models_registered_total", "Model versions registered from model.completed."
)
DUPLICATE_COMPLETIONS = Counter(
    "ftd_model_completions_duplicate_total",
    "model.completed events for a job whose model was registered already.",
)

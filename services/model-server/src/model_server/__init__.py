"""model-server: serves deployed models (embeddings, classifiers, LoRA adapters)."""

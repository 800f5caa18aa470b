"""ftd-serve: serves a user's deployed embedding and classifier models over an OpenAI-compatible
HTTP API (`/v1/embeddings`, `/v1/models`) plus `/v1/classify`, next to the GPU that runs them."""

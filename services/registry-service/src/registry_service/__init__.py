"""registry-service: the trained models of each user, their versions, deployment and LiteLLM config."""

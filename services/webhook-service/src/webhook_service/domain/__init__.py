"""The domain: webhooks, their URL rules, deliveries and their retry schedule (pure Python)."""

"""webhook-service: users' URLs told of job and model events, signed, retried and logged."""

"""Finetune Dispatcher GPU worker: takes jobs over AMQP(S), trains them, pushes the model."""

__version__ = "0.1.0"

"""Trainers for the three job types. The runtime uses `gpu_worker.training.api` only."""

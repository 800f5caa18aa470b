"""Pure domain: the Job aggregate and its state machine. Imports no framework."""

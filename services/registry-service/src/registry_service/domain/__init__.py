"""Pure domain: a registered model version and its state machine. Imports no framework."""

"""`ftd-worker` (the CLI and its supervisor), what a person watching it sees, logging, and the
composition root that wires the trainers and adapters into the service layer."""

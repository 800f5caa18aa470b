"""Domain errors. Entry points map each to an HTTP status and a machine-readable code."""

from uuid import UUID


class DomainError(Exception):
    code: str = "domain_error"


class ModelNotFound(DomainError):
    code = "model_not_found"

    def __init__(self, model_id: UUID) -> None:
        super().__init__(f"Model {model_id} was not found.")
        self.model_id = model_id


class IllegalTransition(DomainError):
    """A status move the state machine does not allow (HTTP 409)."""

    code = "illegal_transition"

    def __init__(self, current: str, target: str, hint: str = "") -> None:
        message = f"A {current} model cannot become {target}."
        super().__init__(f"{message} {hint}".strip())
        self.current = current
        self.target = target


class ModelDeployedError(DomainError):
    """Deleting a model that is still deployed would pull it from under its clients."""

    code = "model_deployed"

    def __init__(self, model_id: UUID) -> None:
        super().__init__(f"Model {model_id} is deployed; undeploy it before deleting it.")


class RepoDeletionRefused(DomainError):
    """`delete_repo=true` cannot be honoured; nothing was deleted."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

"""Domain errors: each carries its machine-readable code and HTTP status (servicekit's
DomainError), which the app's one error mapping answers with."""

from uuid import UUID

from servicekit.domain import DomainError


class ModelNotFound(DomainError):
    code = "model_not_found"
    status = 404

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
        self.details = {"status": current, "requested": target}


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

"""The rules' refusals, each with its HTTP status and a stable code (servicekit.domain)."""

from servicekit.domain import DomainError


class ModelNotDeployed(DomainError):
    status = 404
    code = "model_not_deployed"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"No model {name!r} of yours is deployed here; deploy it (POST "
            "/api/models/{id}/deploy) and call it by its `owner/name`."
        )


class WrongModelKind(DomainError):
    status = 400
    code = "wrong_model_type"

    def __init__(self, name: str, kind: str, wanted: str) -> None:
        super().__init__(f"{name!r} is a {kind} model; this endpoint serves {wanted} models.")


class ModelLoading(DomainError):
    status = 503
    code = "model_loading"

    def __init__(self, name: str, problem: str | None) -> None:
        detail = f" Loading failed: {problem}" if problem else " Try again in a few seconds."
        super().__init__(f"{name!r} is deployed but not loaded on this server.{detail}")


class InvalidApiKey(DomainError):
    status = 401
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("The API key is not valid (unknown, malformed or revoked).")


class ApiKeyNotFound(DomainError):
    status = 404
    code = "api_key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"You have no API key {key_id!r}.")

"""registry-service's app: its routes, its state, its events (servicekit.app builds the rest:
lifespan, middleware, error mapping, health, readiness, metrics, docs)."""

from fastapi import FastAPI

from registry_service.adapters.hub import HubClient
from registry_service.config import Settings
from registry_service.entrypoints import routes_models
from registry_service.entrypoints.deps import AppState
from registry_service.entrypoints.workers import EVENTS, queue_specs
from registry_service.service_layer.litellm import Endpoints
from registry_service.service_layer.unit_of_work import UnitOfWork
from servicekit.app import build_app
from servicekit.service import Platform, Service
from servicekit.uow import Units

# The routes take no request body beyond a few bytes.
MAX_BODY_BYTES = 64 << 10


def create_app(settings: Settings) -> FastAPI:
    async def start(platform: Platform) -> AppState:
        return AppState(
            units=Units(platform.db, UnitOfWork),
            endpoints=Endpoints(
                lora_base_url=settings.lora_base_url.rstrip("/"),
                serve_base_url=settings.serve_base_url.rstrip("/"),
                lora_api_key_env=settings.lora_api_key_env or None,
                serve_api_key_env=settings.serve_api_key_env or None,
            ),
            hub=(
                HubClient(settings.hf_token.get_secret_value(), endpoint=settings.hf_endpoint)
                if settings.hf_token is not None
                else None
            ),
        )

    service = Service(
        name="registry-service",
        description=(
            "Trained models: one version per completed job, deploy/undeploy, delete, and a "
            "LiteLLM configuration for the deployed ones."
        ),
        routers=[routes_models.router],
        start=start,
        max_body_bytes=MAX_BODY_BYTES,
        # The consumer keeps its connections whatever HTTP does.
        pools={"consumer": 2},
        queues=queue_specs,
        events=EVENTS,
        describe=lambda state: {"hub_deletion": state.hub is not None},
    )
    return build_app(service, settings)

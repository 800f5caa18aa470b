"""`ftd-serve`: load the models to serve, then answer HTTP requests for them.

ftd-serve --model embedding:alice/emb=hf://alice/emb@3f2a9c... --port 8005
ftd-serve --registry-url http://localhost:8000 --token "$TOKEN"   # the user's deployed models
"""

import os
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console

from gpu_worker.serve.engines import Engine, load
from gpu_worker.serve.registry import RegistryError, deployed_models
from gpu_worker.serve.sources import ModelSource, SourceError, detect_kind, parse_cli_model, resolve

app = typer.Typer(help="Serve deployed embedding and classifier models.", no_args_is_help=True)
console = Console(stderr=True)
log = structlog.get_logger(__name__)


def load_all(
    sources: list[ModelSource],
    *,
    store_dir: Path | None,
    hf_token: str | None,
    device: str | None = None,
) -> dict[str, Engine]:
    engines: dict[str, Engine] = {}
    for source in sources:
        if source.name in engines:
            raise SourceError(f"{source.name} is listed twice")
        path = resolve(source, store_dir=store_dir, hf_token=hf_token)
        kind = source.kind or detect_kind(path)
        engines[source.name] = load(path, kind, device=device)
        log.info("serve.model_loaded", model=source.name, kind=kind, path=str(path))
    return engines


@app.command()
def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="[TYPE:]NAME=URI; URI is hf://owner/name@rev, file:///path or "
            "store://owner/name@rev. Repeatable."
        ),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(
            envvar="FTD_SERVE_REGISTRY_URL",
            help="Also serve the token's user's deployed models, from this registry.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="FTD_SERVE_REGISTRY_TOKEN", help="User JWT for the registry."),
    ] = None,
    store_dir: Annotated[
        Path | None, typer.Option(envvar="FTD_MODEL_STORE_DIR", help="The local model store.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="FTD_SERVE_API_KEY", help="Require this Bearer key on /v1/*."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1... (default: auto)")] = None,
    host: str = "127.0.0.1",
    port: int = 8005,
) -> None:
    """Load every model, then serve them (a model that cannot be loaded stops the start)."""
    import uvicorn

    from gpu_worker.serve.app import create_app

    try:
        sources = [parse_cli_model(m) for m in model or []]
        if registry_url:
            if not token:
                raise SourceError("--registry-url needs --token (FTD_SERVE_REGISTRY_TOKEN)")
            sources += deployed_models(registry_url, token)
        if not sources:
            raise SourceError("nothing to serve: give --model or --registry-url")
        engines = load_all(
            sources, store_dir=store_dir, hf_token=os.environ.get("HF_TOKEN"), device=device
        )
    except (SourceError, RegistryError, OSError) as exc:
        console.print(f"[red]ftd-serve:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"serving {', '.join(sorted(engines))} on http://{host}:{port}/v1")
    uvicorn.run(create_app(engines, api_key=api_key), host=host, port=port, log_config=None)

"""`ftd-serve`: load the models to serve, then answer HTTP requests for them.

ftd-serve --model embedding:alice/emb=hf://alice/emb@3f2a9c... --port 8005
FTD_SERVE_REGISTRY_TOKEN=... ftd-serve --registry-url http://localhost:8000   # deployed models

Secrets (the registry token, the API key) come from the environment or a file, never from an
argument: any user on the machine reads a process's arguments (`ps`, /proc/<pid>/cmdline).
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


TOKEN_ENV = "FTD_SERVE_REGISTRY_TOKEN"  # noqa: S105 - a variable name, not a secret
API_KEY_ENV = "FTD_SERVE_API_KEY"


def secret_from(env: str, file: Path | None) -> str | None:
    """A secret from `file` when given (surrounding whitespace dropped), else from `env`."""
    if file is not None:
        try:
            value = file.read_text().strip()
        except OSError as exc:
            raise SourceError(f"cannot read {file}: {exc.strerror}") from None
        if not value:
            raise SourceError(f"{file} is empty")
        return value
    return os.environ.get(env) or None


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
            help="[TYPE:]NAME=URI; URI is hf://owner/name@rev, local://owner/name@rev, "
            "file:///path or store://owner/name@rev. Repeatable."
        ),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(
            envvar="FTD_SERVE_REGISTRY_URL",
            help="Also serve the token's user's deployed models, from this registry.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help=f"A file holding the user JWT for the registry (default: ${TOKEN_ENV})."),
    ] = None,
    store_dir: Annotated[
        Path | None, typer.Option(envvar="FTD_MODEL_STORE_DIR", help="The local model store.")
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            help=f"A file holding the Bearer key /v1/* requires (default: ${API_KEY_ENV}; "
            "neither: no key)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1... (default: auto)")] = None,
    host: str = "127.0.0.1",
    port: int = 8005,
) -> None:
    """Load every model, then serve them (a model that cannot be loaded stops the start)."""
    import uvicorn

    from gpu_worker.serve.app import create_app

    try:
        api_key = secret_from(API_KEY_ENV, api_key_file)
        sources = [parse_cli_model(m) for m in model or []]
        if registry_url:
            token = secret_from(TOKEN_ENV, token_file)
            if not token:
                raise SourceError(f"--registry-url needs a token: set {TOKEN_ENV} or --token-file")
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

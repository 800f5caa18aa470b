"""docker-compose.yml checked against the code without Docker: the services' environment against
their Settings (names, and a production start-up with it), the gateway's upstreams against the
service names and ports, health-gated start order, published ports, secrets only by reference to
the env file the README generates, and the workers' model: RabbitMQ with its management API,
which job-api reaches as the administrator the broker's entrypoint creates; no shared worker
user; the bundled worker enrolled by a one-shot (`job-api workers enroll`, parsed by job-api's own
CLI) whose token file it reads."""

import importlib
import ipaddress
import json
import re
import secrets
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from job_api.adapters.broker_admin import vhost_of
from job_api.entrypoints.cli import app as job_api_cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
GATEWAY_SCRIPT = (ROOT / "scripts/gateway.sh").read_text()
GATEWAY_TEMPLATE = (ROOT / "deploy/gateway/nginx.conf.template").read_text()

# The code each image runs, and the Settings class that reads its environment.
SETTINGS = {
    "job-api": "job_api.config:Settings",
    "data-service": "data_service.config:Settings",
    "registry-service": "registry_service.config:Settings",
    "model-server": "model_server.config:Settings",
    "webhook-service": "webhook_service.config:Settings",
    "gpu-worker": "gpu_worker.config:WorkerSettings",
}
HTTP_SERVICES = ("job-api", "data-service", "registry-service", "model-server", "webhook-service")
# ${NAME}, ${NAME:-default}, ${NAME:?message}
REFERENCE = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*)(?P<op>:[-?])?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|WORKER_KEY|TOKEN")


def _code_of(service: dict[str, Any]) -> str | None:
    build = service.get("build") or {}
    if build.get("dockerfile") == "deploy/docker/python-service.Dockerfile":
        return str(build["args"]["SERVICE"])
    if build.get("dockerfile") == "services/gpu-worker/Dockerfile":
        return "gpu-worker"
    return None


def _settings_class(code: str) -> type[BaseSettings]:
    module, name = SETTINGS[code].split(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type)
    assert issubclass(cls, BaseSettings)
    return cls


def _env_names(cls: type[BaseSettings]) -> set[str]:
    """The variables pydantic-settings reads: the aliases where a field has them, else
    prefix + name."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}".upper())
    return {n.upper() for n in names}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so names are checkable"
    return {str(k): str(v) for k, v in env.items()}


def _resolve(value: str, env_file: dict[str, str]) -> str:
    """What compose substitutes, given `env_file` (defaults apply to names not in it)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        if name in env_file:
            return env_file[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} has no default and is not in the env file")

    return REFERENCE.sub(one, value)


def _required_variables() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text()
    return {m["name"] for m in REFERENCE.finditer(text) if m["op"] == ":?"}


def _readme_generated_variables() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Docker Compose", 1)[1].split("\n## ", 1)[0]
    loop = re.search(r"for name in (.*?); do", section, re.S)
    assert loop, "the README's Docker Compose section generates the env file in a loop"
    return set(loop.group(1).replace("\\", " ").split())


def _command_port(service: dict[str, Any]) -> int | None:
    command = service.get("command") or []
    if isinstance(command, list) and "--port" in command:
        return int(command[command.index("--port") + 1])
    return None


def _python_services() -> list[str]:
    return [name for name, s in SERVICES.items() if _code_of(s) is not None]


def test_the_whole_platform_is_in_the_stack() -> None:
    codes = {_code_of(s) for s in SERVICES.values()}
    assert set(SETTINGS) <= codes
    for name in ("postgres", "rabbitmq", "minio", "gateway", "ui", *HTTP_SERVICES, "worker"):
        assert name in SERVICES
    assert _code_of(SERVICES["worker"]) == "gpu-worker"
    # The worker's image gets the training stack, CPU torch for the bundled worker.
    assert "cpu" in SERVICES["worker"]["build"]["args"]["TORCH_INDEX_URL"]


@pytest.mark.parametrize("name", _python_services())
def test_every_variable_set_is_one_the_service_reads(name: str) -> None:
    cls = _settings_class(str(_code_of(SERVICES[name])))
    unknown = set(_environment(SERVICES[name])) - _env_names(cls)
    assert not unknown, f"{name} sets variables its Settings never reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", _python_services())
def test_each_service_starts_in_production_with_its_compose_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = _settings_class(str(_code_of(SERVICES[name])))
    for variable in _env_names(cls):
        monkeypatch.delenv(variable, raising=False)
    env_file = {v: secrets.token_urlsafe(32) for v in _required_variables()}
    env_file["POSTGRES_PASSWORD"] = secrets.token_urlsafe(32)
    for variable, value in _environment(SERVICES[name]).items():
        monkeypatch.setenv(variable, _resolve(value, env_file))
    settings = cls()
    if hasattr(settings, "environment"):
        assert settings.environment == "production"


def test_the_http_services_listen_on_the_port_their_healthcheck_asks() -> None:
    for name in HTTP_SERVICES:
        service = SERVICES[name]
        port = _command_port(service)
        assert port is not None, f"{name} states its port"
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])


def _gateway_placeholders() -> dict[str, str]:
    """The variable scripts/gateway.sh fills each placeholder from:
    -e "s|@@RUN_DIR@@|$RUN_DIR|g", -e "s|@@JOB_API_ADDR@@|$(servers "${FTD_JOB_API_ADDR:-...}")|g"."""
    found = re.findall(r'-e "s\|@@([A-Z_]+)@@\|(?:\$\(servers ")?\$\{([A-Z_]+)', GATEWAY_SCRIPT)
    assert found, "scripts/gateway.sh fills the placeholders from the environment"
    return dict(found)


def test_gateway_upstreams_are_the_compose_services_on_their_ports() -> None:
    gateway_env = _environment(SERVICES["gateway"])
    placeholders = _gateway_placeholders()
    upstreams = re.findall(r"upstream\s+(\w+)\s*\{\s*server\s+@@([A-Z_]+)@@", GATEWAY_TEMPLATE)
    assert {u for u, _ in upstreams} >= {
        "job_api",
        "data_service",
        "registry_service",
        "model_server",
        "webhook_service",
        "ui",
    }
    listen = re.search(r"listen (\d+);", (ROOT / "deploy/docker/ui-nginx.conf").read_text())
    assert listen, "the UI's nginx states its port"
    ui_port = int(listen[1])
    for upstream, placeholder in upstreams:
        variable = placeholders[placeholder]
        assert variable in gateway_env, f"upstream {upstream}: {variable} is not set"
        host, port = gateway_env[variable].rsplit(":", 1)
        assert host in SERVICES, f"upstream {upstream} points at {host}, not a compose service"
        expected = ui_port if host == "ui" else _command_port(SERVICES[host])
        assert int(port) == expected, f"upstream {upstream}: {host} listens on {expected}"
        assert host in SERVICES["gateway"]["depends_on"]


def test_the_gateways_upstreams_keep_their_address_when_restarted() -> None:
    """nginx resolves its upstreams' names once, at its start: each service it proxies to has a
    fixed address on the stack's network, in its subnet, outside the range the other containers'
    addresses come from (so no other container can take it first), and none twice."""
    (pool,) = COMPOSE["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(_resolve(pool["subnet"], {}))
    dynamic = ipaddress.ip_network(_resolve(pool["ip_range"], {}))
    assert dynamic.subnet_of(subnet)  # type: ignore[arg-type]
    placeholders = _gateway_placeholders()
    upstreams = re.findall(r"upstream\s+\w+\s*\{\s*server\s+@@([A-Z_]+)@@", GATEWAY_TEMPLATE)
    gateway_env = _environment(SERVICES["gateway"])
    fixed = {}
    for placeholder in upstreams:
        host = gateway_env[placeholders[placeholder]].rsplit(":", 1)[0]
        networks = SERVICES[host].get("networks") or {}
        assert list(networks) == ["default"], f"{host} is on the stack's network only"
        address = ipaddress.ip_address(_resolve(networks["default"]["ipv4_address"], {}))
        assert address in subnet, f"{host}: {address} is not in {subnet}"
        assert address not in dynamic, f"{host}: {address} is in the dynamic range {dynamic}"
        assert address not in (subnet.network_address, subnet.network_address + 1)
        fixed[host] = address
    assert len(upstreams) == 6
    assert len(set(fixed.values())) == len(fixed), f"an address twice: {fixed}"


def test_gateway_variables_are_the_ones_gateway_sh_reads() -> None:
    read = set(re.findall(r"\$\{([A-Z_]+)", GATEWAY_SCRIPT))
    assert set(_environment(SERVICES["gateway"])) <= read
    gateway = SERVICES["gateway"]
    assert gateway["command"][-1].endswith("scripts/gateway.sh")
    mounts = {v.split(":")[0]: v.split(":")[1] for v in gateway["volumes"]}
    assert mounts["./scripts/gateway.sh"].endswith("/scripts/gateway.sh")
    # gateway.sh finds the template at <its folder>/../deploy/gateway.
    script_root = mounts["./scripts/gateway.sh"].rsplit("/scripts/", 1)[0]
    assert mounts["./deploy/gateway"] == f"{script_root}/deploy/gateway"


def test_the_upload_limit_is_one_value_for_the_gateway_and_data_service() -> None:
    limit = _environment(SERVICES["data-service"])["DATA_SERVICE_MAX_UPLOAD_BYTES"]
    assert _environment(SERVICES["gateway"])["DATA_SERVICE_MAX_UPLOAD_BYTES"] == limit


def test_only_the_gateway_is_published_on_8000_and_the_services_not_at_all() -> None:
    published = {
        name: [str(p) for p in s.get("ports", [])] for name, s in SERVICES.items() if "ports" in s
    }
    on_8000 = [n for n, ports in published.items() if any(p.endswith(":8000") for p in ports)]
    assert on_8000 == ["gateway"]
    for name in (*HTTP_SERVICES, "ui", "worker"):
        assert name not in published, f"{name} is reached through the gateway only"


def test_start_order_waits_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        for target, spec in depends.items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
                assert SERVICES[target].get("restart") == "no", f"{target} is a one-shot"


def test_migrations_run_once_each_one_at_a_time_before_their_service() -> None:
    inits = {
        name: str(_code_of(s))
        for name, s in SERVICES.items()
        if _code_of(s) in HTTP_SERVICES and "db-init" in s.get("command", [])
    }
    assert sorted(inits.values()) == sorted(HTTP_SERVICES)
    for init, code in inits.items():
        assert SERVICES[init]["restart"] == "no"
        assert SERVICES[code]["depends_on"][init]["condition"] == "service_completed_successfully"
        assert "db-init" not in " ".join(SERVICES[code]["command"])
        # The administrator's DSN (the postgres password) goes to the one-shots only.
        assert "FTD_ADMIN_DSN" in _environment(SERVICES[init])
        assert "FTD_ADMIN_DSN" not in _environment(SERVICES[code])
    # One after the other: the first creates the database, concurrent ones would race it.
    chained = [n for n in inits if set(SERVICES[n].get("depends_on", {})) & set(inits)]
    assert len(chained) == len(inits) - 1


def test_no_secret_is_written_in_the_file() -> None:
    for name, service in SERVICES.items():
        for variable, value in _environment(service).items():
            # A *_FILE variable names where a secret is (FTD_WORKER_TOKEN_FILE), not the secret.
            if SECRET_NAME.search(variable) and not variable.endswith("_FILE"):
                m = REFERENCE.fullmatch(value)
                assert m, f"{name}.{variable} must be a ${{...}} reference to the env file"
                assert m["op"] != ":-", f"{name}.{variable}: a secret has no default"
            for userinfo in re.findall(r"://[^/@\s]*:([^@/\s]*)@", value):
                assert REFERENCE.fullmatch(userinfo), f"{name}.{variable}: inline password"


def test_every_required_variable_is_generated_by_the_readme() -> None:
    missing = _required_variables() - _readme_generated_variables()
    assert not missing, f"README.md's env file lacks {sorted(missing)}"


def test_build_files_and_mounted_paths_exist() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# --- workers: enrolled, each with a broker user of its own ------------------------------------

RABBITMQ_DIR = ROOT / "deploy/rabbitmq"


def _enrol_service() -> tuple[str, list[str]]:
    """The one-shot that runs `job-api workers enroll`, and that command's arguments."""
    found = []
    for name, service in SERVICES.items():
        command = service.get("command") or []
        script = " ".join(command) if isinstance(command, list) else str(command)
        for part in script.split("&&"):
            words = shlex.split(part)
            if words[:3] == ["job-api", "workers", "enroll"]:
                found.append((name, words[3:]))
    assert len(found) == 1, f"one service enrolls the bundled worker: {found}"
    return found[0]


def _enroll_params(args: list[str]) -> dict[str, Any]:
    """The arguments as job-api's CLI parses them (an unknown option fails here too)."""
    group: Any = typer.main.get_command(job_api_cli)  # a click group (typer vendors its click)
    enroll = group.commands["workers"].commands["enroll"]
    with enroll.make_context("enroll", list(args)) as ctx:
        return dict(ctx.params)


def _volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (named volume, mode) for the named volumes a service mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if not source.startswith(("./", "/")):
            mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def test_rabbitmq_has_the_management_api_job_api_makes_worker_users_with() -> None:
    rabbitmq = SERVICES["rabbitmq"]
    # The management plugin (its HTTP API on 15672) comes with the -management image.
    assert rabbitmq["image"] == "rabbitmq:3.10-management"
    broker_env = _environment(rabbitmq)
    entrypoint = (RABBITMQ_DIR / "entrypoint.sh").read_text()
    # The administrator the entrypoint creates, from these two variables.
    assert "admin=${FTD_BROKER_ADMIN_USER:-admin}" in entrypoint
    assert 'set_user_tags "$admin" administrator' in entrypoint
    generated = {v: secrets.token_urlsafe(32) for v in _required_variables()}
    for env_file in (generated, {**generated, "FTD_BROKER_ADMIN_USER": "ops"}):
        admin = _resolve(broker_env["FTD_BROKER_ADMIN_USER"], env_file)
        password = _resolve(broker_env["FTD_BROKER_ADMIN_PASSWORD"], env_file)
        for name in ("job-api", _enrol_service()[0]):
            value = _environment(SERVICES[name])["FTD_BROKER_MANAGEMENT_URL"]
            url = urlsplit(_resolve(value, env_file))
            assert (url.scheme, url.hostname, url.port) == ("http", "rabbitmq", 15672), name
            assert (url.username, url.password) == (admin, password), name


def test_there_is_no_shared_worker_broker_user() -> None:
    for path in (
        ROOT / "docker-compose.yml",
        ROOT / "README.md",
        RABBITMQ_DIR / "entrypoint.sh",
        RABBITMQ_DIR / "README.md",
    ):
        assert "FTD_BROKER_WORKER_PASSWORD" not in path.read_text(), path
    definitions = json.loads((RABBITMQ_DIR / "definitions.json").read_text())
    assert {u["name"] for u in definitions["users"]} == {
        "job-api",
        "data-service",
        "registry-service",
        "model-server",
        "webhook-service",
    }
    assert definitions["topic_permissions"] == []


def test_worker_users_are_made_in_the_vhost_job_api_uses() -> None:
    definitions = json.loads((RABBITMQ_DIR / "definitions.json").read_text())
    vhosts = {v["name"] for v in definitions["vhosts"]}
    env_file = {v: "x" for v in _required_variables()}
    job_api = _environment(SERVICES["job-api"])
    vhost = vhost_of(_resolve(job_api["FTD_AMQP_URL"], env_file))
    assert vhost in vhosts
    # The broker admin takes the vhost from FTD_AMQP_URL: the one-shot's must be job-api's.
    enrol = _environment(SERVICES[_enrol_service()[0]])
    assert vhost_of(_resolve(enrol["FTD_AMQP_URL"], env_file)) == vhost
    # Workers are told an address without credentials (they log in as their own users), in
    # that vhost, by default the broker's compose name.
    public = urlsplit(_resolve(job_api["FTD_WORKER_AMQP_URL_PUBLIC"], {}))
    assert public.scheme in ("amqp", "amqps")
    assert (public.username, public.password) == (None, None)
    assert (public.hostname, public.port) == ("rabbitmq", 5672)
    assert vhost_of(public.geturl()) == vhost


def test_the_worker_reads_the_token_the_enrol_one_shot_leaves_in_a_shared_volume() -> None:
    enrol_name, args = _enrol_service()
    enrol, worker = SERVICES[enrol_name], SERVICES["worker"]
    params = _enroll_params(args)
    token_file = Path(params["token_file"])
    assert params["name"]
    # It is job-api's image (its CLI), with job-api's database and broker administrator.
    assert enrol["image"] == SERVICES["job-api"]["image"]
    for variable in ("JOB_API_DATABASE_URL", "FTD_BROKER_MANAGEMENT_URL"):
        assert _environment(enrol)[variable] == _environment(SERVICES["job-api"])[variable], (
            variable
        )
    assert enrol["restart"] == "no"
    assert enrol["depends_on"]["job-api-db-init"]["condition"] == "service_completed_successfully"
    assert enrol["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    # One named volume, written by the one-shot, read (only) by the worker at the same path.
    folder = str(token_file.parent)
    volume, mode = _volume_mounts(enrol)[folder]
    assert mode == "rw"
    assert _volume_mounts(worker)[folder] == (volume, "ro")
    assert volume in COMPOSE["volumes"]
    worker_env = _environment(worker)
    assert worker_env["FTD_WORKER_TOKEN_FILE"] == str(token_file)
    assert "FTD_WORKER_TOKEN" not in worker_env
    assert worker["depends_on"][enrol_name]["condition"] == "service_completed_successfully"
    # The file (mode 0600) is handed to the user the worker image runs as.
    uid = re.search(
        r"useradd [^\n]*--uid (\d+)", (ROOT / "services/gpu-worker/Dockerfile").read_text()
    )
    assert uid, "the worker image names its user's uid"
    script = " ".join(enrol["command"])
    assert f"chown {uid[1]}:{uid[1]} {token_file}" in script


def test_the_worker_asks_the_platform_who_it_is_and_restarts_unless_stopped() -> None:
    worker = SERVICES["worker"]
    env = _environment(worker)
    api = urlsplit(env["FTD_API_URL"])
    assert api.hostname in ("gateway", "job-api")
    if api.hostname == "gateway":
        port = int(_environment(SERVICES["gateway"])["FTD_GATEWAY_PORT"])
    else:
        port = _command_port(SERVICES["job-api"]) or 0
    assert api.port == port
    assert worker["depends_on"][api.hostname]["condition"] == "service_healthy"
    # Its broker address, when it sets one, carries no credentials: its user is its own.
    for variable in ("FTD_AMQP_URL", "FTD_WORKER_AMQP_URL"):
        if variable in env:
            url = urlsplit(env[variable])
            assert (url.username, url.password) == (None, None), variable
            assert url.hostname == "rabbitmq"
    assert worker["restart"] == "unless-stopped"
    assert worker["stop_grace_period"]


def test_model_server_reads_the_bundled_workers_model_store() -> None:
    """model-server loads what the CPU worker trained: the worker's volume, mounted read-only, at
    the store path the worker's image writes to (FTD_MODEL_STORE_DIR in its Dockerfile)."""
    dockerfile = (ROOT / SERVICES["worker"]["build"]["dockerfile"]).read_text()
    written = re.search(r"FTD_MODEL_STORE_DIR=(\S+)", dockerfile)
    assert written, "the worker's image states its model store"
    store = written[1]
    worker_volumes = {v: target for target, (v, _) in _volume_mounts(SERVICES["worker"]).items()}
    served = _volume_mounts(SERVICES["model-server"])
    (target,) = [t for t, (volume, _) in served.items() if volume in worker_volumes]
    volume, mode = served[target]
    assert mode == "ro"
    assert worker_volumes[volume] == target, "the same path as in the worker"
    assert store.startswith(target.rstrip("/") + "/")
    assert _environment(SERVICES["model-server"])["FTD_MODEL_STORE_DIR"] == store

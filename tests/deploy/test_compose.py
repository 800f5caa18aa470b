"""docker-compose.yml checked against the code without Docker: the services' environment against
their Settings (names, and a production start-up with it), the gateway's upstreams against the
service names and ports, health-gated start order, published ports, and secrets only by
reference to the env file the README generates."""

import importlib
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

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
    "gpu-worker": "gpu_worker.config:WorkerSettings",
}
HTTP_SERVICES = ("job-api", "data-service", "registry-service")
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


def test_gateway_upstreams_are_the_compose_services_on_their_ports() -> None:
    gateway_env = _environment(SERVICES["gateway"])
    # scripts/gateway.sh: -e "s|@@JOB_API_ADDR@@|${FTD_JOB_API_ADDR:-127.0.0.1:8001}|g"
    placeholders = dict(re.findall(r"s\|@@([A-Z_]+)@@\|\$\{([A-Z_]+)", GATEWAY_SCRIPT))
    upstreams = re.findall(r"upstream\s+(\w+)\s*\{\s*server\s+@@([A-Z_]+)@@", GATEWAY_TEMPLATE)
    assert {u for u, _ in upstreams} >= {"job_api", "data_service", "registry_service", "ui"}
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
            if SECRET_NAME.search(variable):
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

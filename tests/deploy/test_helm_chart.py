"""The Helm chart (deploy/helm/finetune-dispatcher) rendered and checked without a cluster.

Rendering: `helm template` where helm is installed, else tests/deploy/helm_render.py (the subset
of Go templates and Helm functions the chart uses; it refuses anything else). Each rendered
manifest of a core kind is validated against the Kubernetes OpenAPI schemas kubernetes-validate
ships (offline, strict: unknown fields are errors). The operators' resources (RabbitmqCluster,
CloudNativePG's Cluster, KEDA's ScaledObject and TriggerAuthentication) are not in those schemas:
they are checked against the small schemas below, written from the operators' documented fields
(required fields, types, no unknown spec fields), which is a structural check, not the CRDs'.
"""

import importlib
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from contracts.catalogue import HardwareClass
from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames

sys.path.insert(0, str(Path(__file__).parent))
from helm_render import TemplateError, render_chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/finetune-dispatcher"
K8S_VERSION = "1.30"
RELEASE = "ftd"
FULL = f"{RELEASE}-finetune-dispatcher"
PY_SERVICES = ("job-api", "data-service", "registry-service", "model-server", "webhook-service")
SETTINGS = {
    "job-api": "job_api.config:Settings",
    "data-service": "data_service.config:Settings",
    "registry-service": "registry_service.config:Settings",
    "model-server": "model_server.config:Settings",
    "webhook-service": "webhook_service.config:Settings",
    "gpu-worker": "gpu_worker.config:WorkerSettings",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|WORKER_KEY|ACCESS_KEY")
# scheme://user:password@ where the password is not only $(VARIABLE) references
LITERAL_CREDENTIAL = re.compile(r"://[^:/@\s]+:(?!(?:\$\([A-Z0-9_]+\))+@)[^@\s]+@")
REFERENCE = re.compile(r"\$\(([A-Z][A-Z0-9_]*)\)")

_NAME = {"type": "string", "minLength": 1}
_OBJECT = {"type": "object"}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": _NAME}}


def _crd(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"metadata": _METADATA, "spec": spec},
    }


CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    # https://www.rabbitmq.com/kubernetes/operator/using-operator (RabbitmqCluster spec)
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "image": _NAME,
                "imagePullSecrets": {"type": "array"},
                "service": _OBJECT,
                "persistence": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"storageClassName": _NAME, "storage": _NAME},
                },
                "resources": _OBJECT,
                "affinity": _OBJECT,
                "tolerations": {"type": "array"},
                "rabbitmq": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "additionalPlugins": {"type": "array", "items": _NAME},
                        "additionalConfig": {"type": "string"},
                        "advancedConfig": {"type": "string"},
                        "envConfig": {"type": "string"},
                        "erlangInetConfig": {"type": "string"},
                    },
                },
                "tls": _OBJECT,
                "override": _OBJECT,
                "skipPostDeploySteps": {"type": "boolean"},
                "terminationGracePeriodSeconds": {"type": "integer"},
                "delayStartSeconds": {"type": "integer"},
                "secretBackend": _OBJECT,
            },
        }
    ),
    # https://cloudnative-pg.io/documentation/current/cloudnative-pg.v1/ (ClusterSpec)
    ("postgresql.cnpg.io/v1", "Cluster"): _crd(
        {
            "type": "object",
            "required": ["instances", "storage"],
            "additionalProperties": False,
            "properties": {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": _NAME,
                "enableSuperuserAccess": {"type": "boolean"},
                "superuserSecret": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": _NAME},
                },
                "storage": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {"size": _NAME, "storageClass": _NAME},
                },
                "resources": _OBJECT,
                "bootstrap": _OBJECT,
                "postgresql": _OBJECT,
                "managed": _OBJECT,
                "affinity": _OBJECT,
                "monitoring": _OBJECT,
                "backup": _OBJECT,
            },
        }
    ),
    # https://keda.sh/docs/latest/reference/scaledobject-spec/ and the RabbitMQ scaler's page
    ("keda.sh/v1alpha1", "ScaledObject"): _crd(
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": _NAME, "kind": _NAME, "apiVersion": _NAME},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "advanced": _OBJECT,
                "fallback": _OBJECT,
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": _NAME,
                            "name": _NAME,
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": _NAME, "kind": _NAME},
                            },
                        },
                    },
                },
            },
        }
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {"parameter": _NAME, "name": _NAME, "key": _NAME},
                    },
                },
                "env": {"type": "array"},
                "podIdentity": _OBJECT,
            },
        }
    ),
}


def render(overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's manifests for these values: helm's when installed, else helm_render's."""
    helm = shutil.which("helm")
    if helm:
        args = [helm, "template", RELEASE, str(CHART), "--namespace", "finetune"]
        if overrides:
            args += ["--values", "-"]
        text = subprocess.run(
            args,
            input=yaml.safe_dump(overrides or {}),
            text=True,
            check=True,
            capture_output=True,
        ).stdout
    else:
        text = "\n---\n".join(render_chart(CHART, overrides, release=RELEASE).values())
    return [m for m in yaml.safe_load_all(text) if m]


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


def _of(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return list(manifest["spec"]["template"]["spec"]["containers"])


def validate(manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CRD_SCHEMAS:
            jsonschema.validate(manifest, CRD_SCHEMAS[key])
        else:
            kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}".upper())
    return {n.upper() for n in names}


def _settings(code: str) -> type[BaseSettings]:
    module, name = SETTINGS[code].split(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, BaseSettings)
    return cls


def test_default_values_render_and_validate(default: list[dict[str, Any]]) -> None:
    kinds = {(m["apiVersion"], m["kind"]) for m in default}
    assert set(CRD_SCHEMAS) <= kinds, "the operators' resources are all there"
    validate(default)
    names = [(m["kind"], m["metadata"]["name"]) for m in default]
    assert len(names) == len(set(names)), "no two resources share a kind and name"
    assert not _of(default, "Secret"), "the chart makes no Secret: values name existing ones"


def test_the_validation_refuses_what_it_should(default: list[dict[str, Any]]) -> None:
    """Both validators catch a wrong field (the checks above can fail)."""
    deployment = json.loads(json.dumps(_of(default, "Deployment")[f"{FULL}-job-api"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate([deployment])
    scaled = json.loads(json.dumps(_of(default, "ScaledObject")[f"{FULL}-gpu-worker"]))
    scaled["spec"]["minReplicas"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate([scaled])


def test_every_deployment_has_probes_resources_and_a_pdb(default: list[dict[str, Any]]) -> None:
    deployments = _of(default, "Deployment")
    assert set(deployments) == {
        f"{FULL}-{n}" for n in (*PY_SERVICES, "gateway", "ui", "gpu-worker")
    }
    budgets = _of(default, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        covering = [b for b in budgets.values() if b["spec"]["selector"]["matchLabels"] == selector]
        assert len(covering) == 1, f"{name}: one PodDisruptionBudget"
        for container in _containers(deployment):
            resources = container["resources"]
            assert resources["requests"]["cpu"], name
            assert resources["requests"]["memory"], name
            assert resources["limits"]["memory"], name
            if name.endswith("-gpu-worker"):
                # It dials out only, no port to probe (see gpu-worker.yaml).
                assert "ports" not in container
                continue
            assert container["livenessProbe"]["httpGet"]["port"] == "http", name
            assert container["readinessProbe"]["httpGet"]["port"] == "http", name
    for service in PY_SERVICES:
        container = _containers(deployments[f"{FULL}-{service}"])[0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["command"] == [service, "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_gpu_workers_request_gpus_and_scale_to_zero_on_their_work_queues(
    default: list[dict[str, Any]],
) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["gpuWorker"]
    worker = _of(default, "Deployment")[f"{FULL}-gpu-worker"]
    assert "replicas" not in worker["spec"], "KEDA owns the replica count"
    (container,) = _containers(worker)
    for side in ("requests", "limits"):
        assert container["resources"][side]["nvidia.com/gpu"] == values["gpus"] >= 1
    scaled = _of(default, "ScaledObject")[f"{FULL}-gpu-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert scaled["minReplicaCount"] == 0
    assert scaled["maxReplicaCount"] >= 1
    provider = GPUProvider(values["provider"])
    expected = BrokerNames().offer_queues(
        SHARED_POOL, [JobType(t) for t in values["jobTypes"]], provider, values["gpuMemoryGb"]
    )
    queues = [t["metadata"]["queueName"] for t in scaled["triggers"]]
    assert sorted(queues) == sorted(expected), "one trigger per queue a worker of the pool takes"
    auths = _of(default, "TriggerAuthentication")
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert "host" not in trigger["metadata"], "the broker address with credentials is a Secret"
        assert trigger["authenticationRef"]["name"] in auths
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env["FTD_WORKER_JOB_TYPES"]["value"]) == values["jobTypes"]
    assert env["FTD_WORKER_PROVIDER"]["value"] == provider.value


def _scaled_queues(overrides: dict[str, Any]) -> list[str]:
    manifests = render({"gpuWorker": overrides})
    validate(manifests)
    scaled = _of(manifests, "ScaledObject")[f"{FULL}-gpu-worker"]["spec"]
    return [t["metadata"]["queueName"] for t in scaled["triggers"]]


@pytest.mark.parametrize("gpu_memory_gb", [0, 16, 24, 40, 80])
@pytest.mark.parametrize("provider", [GPUProvider.LOCAL, GPUProvider.RUNPOD])
def test_keda_watches_the_queues_of_every_class_the_pools_gpu_satisfies(
    gpu_memory_gb: int, provider: GPUProvider
) -> None:
    """The chart's table of classes per job type is the catalogue's: for every pool size the
    triggers are the queues a worker with that GPU consumes (contracts.routing.offer_queues)."""
    queues = _scaled_queues({"gpuMemoryGb": gpu_memory_gb, "provider": provider.value})
    expected = BrokerNames().offer_queues(SHARED_POOL, list(JobType), provider, gpu_memory_gb)
    assert sorted(queues) == sorted(expected)
    assert len(queues) == len(set(queues)), "one trigger per queue"


def test_a_24_gb_pool_scales_on_7b_lora_jobs_and_a_16_gb_pool_does_not() -> None:
    names = BrokerNames()
    local = GPUProvider.LOCAL
    lora_7b = names.work_queue(JobType.LLM_LORA, local, HardwareClass.GPU24)
    cpu_queues = {names.work_queue(t, local) for t in JobType}

    queues = _scaled_queues({"gpuMemoryGb": 24})
    assert lora_7b == "finetune.work.llm_lora.gpu24.local"
    assert lora_7b in queues
    assert cpu_queues <= set(queues), "a GPU worker takes the CPU-class jobs too"
    for bigger in (HardwareClass.GPU40, HardwareClass.GPU80):
        assert not [q for q in queues if f".{bigger}." in q], bigger

    small = _scaled_queues({"gpuMemoryGb": 16})
    assert lora_7b not in small
    assert set(small) == cpu_queues

    only_lora = _scaled_queues({"gpuMemoryGb": 80, "jobTypes": ["llm_lora"]})
    assert sorted(only_lora) == sorted([names.work_queue(JobType.LLM_LORA, local), lora_7b])


def test_an_unknown_job_type_or_no_gpu_memory_is_refused() -> None:
    with pytest.raises((TemplateError, subprocess.CalledProcessError)):
        render({"gpuWorker": {"jobTypes": ["llm_full"]}})
    with pytest.raises((TemplateError, subprocess.CalledProcessError)):
        render({"gpuWorker": {"gpuMemoryGb": None}})


@pytest.mark.parametrize("create", [True, False])
def test_migrations_run_db_init_as_ordered_hooks(create: bool) -> None:
    overrides: dict[str, Any] = {"postgresql": {"create": create, "host": "pg.example"}}
    jobs = _of(render(overrides), "Job")
    weights = []
    for service in PY_SERVICES:
        job = jobs[f"{FULL}-{service}-migrate"]
        annotations = job["metadata"]["annotations"]
        hooks = set(annotations["helm.sh/hook"].split(","))
        # A database the chart makes exists only after install; an external one before.
        assert hooks == {"post-install" if create else "pre-install", "pre-upgrade"}
        assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
        weights.append(int(annotations["helm.sh/hook-weight"]))
        (container,) = _containers(job)
        assert container["command"] == [service, "db-init"]
        cli = importlib.import_module(f"{service.replace('-', '_')}.entrypoints.cli")
        commands = typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]
        assert "db-init" in commands, service
        env = {e["name"]: e for e in container["env"]}
        host = "pg.example" if not create else f"{FULL}-postgres-rw"
        assert f"@{host}:5432/postgres" in env["FTD_ADMIN_DSN"]["value"]
    assert weights == sorted(set(weights)), "one after the other: job-api's creates the database"


def test_an_external_database_needs_its_host() -> None:
    with pytest.raises((TemplateError, subprocess.CalledProcessError)):
        render({"postgresql": {"create": False}})


def _env_lists(manifests: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job"):
            for container in _containers(manifest):
                out.append(
                    (
                        f"{manifest['metadata']['name']}/{container['name']}",
                        container.get("env", []),
                    )
                )
    return out


def test_no_secret_value_is_a_literal(default: list[dict[str, Any]]) -> None:
    secrets = {}
    for where, env in _env_lists(default):
        for variable in env:
            name = variable["name"]
            if "valueFrom" in variable:
                ref = variable["valueFrom"]["secretKeyRef"]
                secrets[ref["name"]] = where
                continue
            value = variable["value"]
            assert not SECRET_NAME.search(name), f"{where}: {name} is a literal"
            assert not LITERAL_CREDENTIAL.search(value), f"{where}: {name} holds a credential"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(secrets) == {
        values["existingSecret"],
        values["gpuWorker"]["existingSecret"],
        f"{FULL}-rabbitmq-default-user",
        f"{FULL}-postgres-superuser",
    }
    # The KEDA scaler's broker address (it carries credentials) is a Secret's too.
    auth = _of(default, "TriggerAuthentication")[f"{FULL}-gpu-worker-rabbitmq"]
    assert (
        auth["spec"]["secretTargetRef"][0]["name"]
        == values["gpuWorker"]["autoscaling"]["existingSecret"]
    )
    # The rendered text holds no credential-bearing URL at all.
    text = json.dumps(default)
    assert not LITERAL_CREDENTIAL.search(text)


def test_the_secret_check_would_catch_a_literal() -> None:
    assert LITERAL_CREDENTIAL.search("amqp://job-api:hunter2@rabbitmq:5672/")
    assert not LITERAL_CREDENTIAL.search("amqp://job-api:$(FTD_BROKER_JOB_API_PASSWORD)@rabbitmq/")
    assert not LITERAL_CREDENTIAL.search("http://$(A):$(B)@rabbitmq:15672")


def test_env_names_are_the_ones_the_services_read(default: list[dict[str, Any]]) -> None:
    """Every variable is read by the service's Settings, or is a piece another variable of the
    same container puts together with $(NAME), defined before it (Kubernetes expands only
    earlier ones)."""
    deployments = _of(default, "Deployment") | _of(default, "Job")
    checked = 0
    for name, manifest in deployments.items():
        code = next((c for c in SETTINGS if name in (f"{FULL}-{c}", f"{FULL}-{c}-migrate")), None)
        if code is None:
            continue
        read = _env_names(_settings(code))
        for container in _containers(manifest):
            env = container["env"]
            seen: list[str] = []
            referenced: set[str] = set()
            for variable in env:
                for ref in REFERENCE.findall(variable.get("value", "")):
                    assert ref in seen, f"{name}: {variable['name']} uses $({ref}) before it"
                    referenced.add(ref)
                seen.append(variable["name"])
            assert len(seen) == len(set(seen)), f"{name}: a variable twice"
            for variable in seen:
                assert variable in read or variable in referenced, f"{name}: {variable}"
            checked += 1
    assert checked == 11  # five services, their migrations, the worker


def test_chart_files_are_the_repositorys() -> None:
    """The chart carries copies (a chart reads only its own files): kept identical."""
    assert (CHART / "files/nginx.conf.template").read_bytes() == (
        ROOT / "deploy/gateway/nginx.conf.template"
    ).read_bytes()
    assert (CHART / "files/definitions.json").read_bytes() == (
        ROOT / "deploy/rabbitmq/definitions.json"
    ).read_bytes()


def test_the_gateway_is_deploy_gateways_nginx_with_the_services_addresses(
    default: list[dict[str, Any]],
) -> None:
    config = _of(default, "ConfigMap")[f"{FULL}-gateway"]["data"]["nginx.conf"]
    # Every placeholder filled (the file's own comment names the pattern, @@NAME@@).
    assert set(re.findall(r"@@[A-Z_]+@@", config)) == {"@@NAME@@"}
    services = _of(default, "Service")
    upstreams = dict(re.findall(r"upstream (\w+)\s+\{ server ([^;]+);", config))
    assert set(upstreams) == {
        "job_api",
        "data_service",
        "registry_service",
        "model_server",
        "webhook_service",
        "ui",
    }
    for upstream, address in upstreams.items():
        host, port = address.split(":")
        assert host == f"{FULL}-{upstream.replace('_', '-')}"
        assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]]
    assert "listen 0.0.0.0:8000;" in config
    assert "client_max_body_size 2147549184;" in config  # 2 GiB + 64 KiB, as scripts/gateway.sh


def test_ingress_mode_routes_to_the_services_and_drops_the_nginx_gateway() -> None:
    manifests = render({"gateway": {"mode": "ingress", "ingress": {"className": "nginx"}}})
    validate(manifests)
    assert f"{FULL}-gateway" not in _of(manifests, "Deployment")
    services = _of(manifests, "Service")
    (ingress,) = _of(manifests, "Ingress").values()
    paths = {
        p["path"]: p["backend"]["service"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    for backend in paths.values():
        assert backend["port"]["number"] in [
            p["port"] for p in services[backend["name"]]["spec"]["ports"]
        ]
    assert paths["/api/finetune/upload"]["name"] == f"{FULL}-data-service"
    assert paths["/api/finetune"]["name"] == f"{FULL}-job-api"
    assert paths["/api/models"]["name"] == f"{FULL}-registry-service"
    assert paths["/v1"]["name"] == f"{FULL}-model-server"
    assert paths["/api/keys"]["name"] == f"{FULL}-model-server"
    assert paths["/api/webhooks"]["name"] == f"{FULL}-webhook-service"
    assert paths["/v1/files"]["name"] == f"{FULL}-data-service"
    assert paths["/v1/fine_tuning"]["name"] == f"{FULL}-job-api"
    assert paths["/docs-assets"]["name"] == f"{FULL}-job-api"
    assert paths["/"]["name"] == f"{FULL}-ui"


def test_broker_users_hook_applies_the_shipped_definitions(default: list[dict[str, Any]]) -> None:
    config = _of(default, "ConfigMap")[f"{FULL}-broker-users"]["data"]
    assert json.loads(config["definitions.json"]) == json.loads(
        (ROOT / "deploy/rabbitmq/definitions.json").read_text()
    )
    job = _of(default, "Job")[f"{FULL}-broker-users"]
    env = {e["name"] for e in _containers(job)[0]["env"]}
    users = json.loads(config["definitions.json"])["users"]
    for user in users:
        assert f"FTD_BROKER_{user['name'].upper().replace('-', '_')}_PASSWORD" in env


@pytest.mark.integration
def test_broker_users_script_makes_users_that_log_in_with_their_permissions(
    tmp_path: Path,
) -> None:
    """files/broker_users.py against the local broker's management API, in a fresh vhost with
    users of their own names (the definitions' roles, renamed)."""
    import asyncio
    from urllib.parse import quote

    import aio_pika
    import aiormq

    tag = uuid.uuid4().hex[:8]
    vhost = f"ftd-helm-{tag}"
    definitions = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
    renamed = json.loads(
        json.dumps(definitions)
        .replace('"job-api"', f'"t{tag}-job-api"')
        .replace('"data-service"', f'"t{tag}-data-service"')
        .replace('"registry-service"', f'"t{tag}-registry-service"')
        .replace('"model-server"', f'"t{tag}-model-server"')
        .replace('"webhook-service"', f'"t{tag}-webhook-service"')
    )
    passwords = {u["name"]: uuid.uuid4().hex for u in renamed["users"]}
    env = {
        "FTD_BROKER_MANAGEMENT_URL": "http://127.0.0.1:15672",
        "FTD_BROKER_ADMIN_USER": "guest",
        "FTD_BROKER_ADMIN_PASSWORD": "guest",
        "FTD_BROKER_VHOST": vhost,
        "PATH": "/usr/bin:/bin",
    }
    for user, password in passwords.items():
        if not user.endswith("registry-service"):  # left without one: cannot log in
            env[f"FTD_BROKER_{user.upper().replace('-', '_')}_PASSWORD"] = password
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(renamed))
    script = CHART / "files/broker_users.py"

    def url(user: str) -> str:
        return f"amqp://{user}:{passwords[user]}@127.0.0.1:5672/{quote(vhost, safe='')}"

    async def check() -> None:
        async with await aio_pika.connect(url(f"t{tag}-job-api")) as connection:
            channel = await connection.channel()
            await channel.declare_exchange("finetune.events", aio_pika.ExchangeType.TOPIC)
        async with await aio_pika.connect(url(f"t{tag}-data-service")) as connection:
            channel = await connection.channel()
            await channel.declare_queue("data-service.events", durable=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.declare_queue("job-api.events", durable=True)
        async with await aio_pika.connect(url(f"t{tag}-model-server")) as connection:
            channel = await connection.channel()
            await channel.declare_queue("model-server.events", durable=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.declare_queue("registry-service.events", durable=True)
        async with await aio_pika.connect(url(f"t{tag}-webhook-service")) as connection:
            channel = await connection.channel()
            await channel.declare_queue("webhook-service.events", durable=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.declare_queue("model-server.events", durable=True)
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(url(f"t{tag}-registry-service"))

    try:
        result = subprocess.run(
            [sys.executable, str(script), str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        for password in passwords.values():
            assert password not in result.stdout + result.stderr
        asyncio.run(check())
    finally:
        path.unlink(missing_ok=True)
        for user in passwords:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


def test_the_renderer_follows_helm_where_it_differs_from_python() -> None:
    """What helm_render must get right to stand in for helm (Helm's behaviour, documented)."""
    from helm_render import Renderer, go_str, helm_data, parse

    assert go_str(helm_data(2)) == "2"
    assert go_str(helm_data(1048576)) == "1.048576e+06"  # Helm's float64 values
    assert go_str(True) == "true"
    renderer = Renderer(CHART, {})

    def run(source: str, dot: Any) -> str:
        return renderer.execute(parse(source), dot, [{"$": dot}])

    assert run("a\n  {{- if .x }} yes {{- end }}\nb", {"x": []}) == "a\nb"
    assert (
        run("{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}", {"b": 1, "a": "x"}) == "a=x;b=1;"
    )
    assert run('{{ .m | default "d" }}', {"m": ""}) == "d"
    with pytest.raises(TemplateError):
        run("{{ .a.b }}", {})  # nil pointer evaluating .b, as Go
    with pytest.raises(TemplateError):
        run("{{ tpl .a . }}", {"a": ""})  # not supported: refused, not guessed
    # Go's le compares one kind only: a literal (int) with a value (float64) is an error, so the
    # chart converts values with sprig's int first.
    assert run("{{ le 24 (int .gb) }} {{ le 40 (int .gb) }}", helm_data({"gb": 24})) == "true false"
    with pytest.raises(TemplateError):
        run("{{ le 24 .gb }}", helm_data({"gb": 24}))

"""The AsyncAPI 2.6 document: the events exchange, who publishes and consumes what, the claim RPC.

It describes the whole system rather than one service. AsyncAPI 2 names operations from the
reader's side, so on each channel `subscribe` lists the services that publish to it and `publish`
the services that consume it; each operation is tagged with those services.
"""

import inspect
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.asyncapi_description import EVENT_CONTENT_TYPE, description, work_queue_pattern
from contracts.enums import JobType
from contracts.events import EVENT_TYPES, Envelope, EventPayload
from contracts.routing import (
    CLAIM_KEY,
    JOB_API,
    WORKER_REPORT_KEYS,
    BrokerNames,
)
from contracts.rpc import ClaimJob, ClaimReply

ASYNCAPI_VERSION = "2.6.0"
AMQP_BINDING_VERSION = "0.2.0"
RPC_CONTENT_TYPE = "application/json"

GPU_WORKER = "gpu-worker"
DATA_SERVICE = "data-service"
REGISTRY_SERVICE = "registry-service"

SERVICES: dict[str, str] = {
    JOB_API: "Owns jobs: takes submissions, grants claims, fences attempts, publishes job events.",
    GPU_WORKER: "Runs one attempt at a time on a GPU provider and reports progress and results.",
    DATA_SERVICE: "Stores and validates uploaded datasets.",
    REGISTRY_SERVICE: "Registers trained models and deploys them.",
}


@dataclass(frozen=True)
class Flow:
    """Which services publish an event type and which consume it."""

    publishers: tuple[str, ...]
    consumers: tuple[str, ...] = ()


FLOWS: dict[str, Flow] = {
    "job.created": Flow((JOB_API,), (GPU_WORKER,)),
    "job.requeued": Flow((JOB_API,), (GPU_WORKER,)),
    "job.claimed": Flow((JOB_API,)),
    "job.progress": Flow((GPU_WORKER,), (JOB_API,)),
    "job.failed": Flow((GPU_WORKER,), (JOB_API,)),
    "model.pushed": Flow((GPU_WORKER,), (JOB_API,)),
    "worker.heartbeat": Flow((GPU_WORKER,), (JOB_API,)),
    "model.completed": Flow((JOB_API,), (REGISTRY_SERVICE,)),
    "job.cancel_requested": Flow((JOB_API,), (GPU_WORKER,)),
    "job.status_changed": Flow((JOB_API,), (DATA_SERVICE,)),
    "model.deployed": Flow((REGISTRY_SERVICE,)),
    "model.deleted": Flow((REGISTRY_SERVICE,)),
    "dataset.validated": Flow((DATA_SERVICE,), (JOB_API,)),
    "dataset.deleted": Flow((DATA_SERVICE,), (JOB_API,)),
}

# The payload fields a routing key is built from, and the channel parameter each one becomes.
ROUTING_PARAMETERS: dict[str, dict[str, str]] = {
    "job.created": {"job_type": "job_type", "gpu_provider": "provider"},
    "job.requeued": {"job_type": "job_type", "gpu_provider": "provider"},
    "job.cancel_requested": {"job_id": "job_id"},
}

CLAIM_FLOW = Flow((GPU_WORKER,), (JOB_API,))
CLAIM_REPLY_FLOW = Flow((JOB_API,), (GPU_WORKER,))
REPLY_CHANNEL = "{reply_to}"


def routing_pattern(payload: type[EventPayload]) -> str:
    """The payload's own routing key, with each variable part shown as `{parameter}`."""
    fields = ROUTING_PARAMETERS.get(payload.event_type, {})
    # model_construct skips validation, so placeholders can stand in for enum and UUID values.
    placeholders: dict[str, Any] = {name: f"{{{param}}}" for name, param in fields.items()}
    sample = payload.model_construct(**placeholders)
    return sample.routing_key()


def _ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{section}/{name}"}


def _component_schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [Envelope, *EVENT_TYPES.values(), ClaimJob, ClaimReply]
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def _operation_id(name: str, suffix: str) -> str:
    head, *rest = name.replace("_", ".").split(".")
    return head[:1].lower() + head[1:] + "".join(part.capitalize() for part in rest) + suffix


# How messaging.broker publishes events: persistent, confirmed, mandatory.
_EVENT_SEND_BINDINGS: dict[str, Any] = {
    "amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDING_VERSION}
}


def _ack(ack: bool) -> dict[str, Any]:
    return {"amqp": {"ack": ack, "bindingVersion": AMQP_BINDING_VERSION}}


def _operations(
    name: str,
    flow: Flow,
    message: dict[str, str],
    *,
    consumed_from: str,
    send_bindings: dict[str, Any] | None = None,
    receive_bindings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    if flow.publishers:
        operations["subscribe"] = {
            "operationId": _operation_id(name, "Send"),
            "summary": f"Published by {', '.join(flow.publishers)}.",
            "tags": [{"name": service} for service in flow.publishers],
            "message": message,
        }
        if send_bindings:
            operations["subscribe"]["bindings"] = send_bindings
    if flow.consumers:
        operations["publish"] = {
            "operationId": _operation_id(name, "Receive"),
            "summary": f"Consumed by {', '.join(flow.consumers)}.",
            "description": consumed_from,
            "tags": [{"name": service} for service in flow.consumers],
            "message": message,
        }
        if receive_bindings:
            operations["publish"]["bindings"] = receive_bindings
    return operations


def _consumed_from(event_type: str, flow: Flow, names: BrokerNames) -> str:
    if GPU_WORKER in flow.consumers and event_type in ("job.created", "job.requeued"):
        queue = work_queue_pattern(names)
        gpu_queue = work_queue_pattern(names, gpu_class=True)
        pool = names.pool_queue("{pool}", cast(JobType, "{job_type}"))
        return (
            f"From the shared pool's work queue `{queue}` of the job's type and provider "
            f"(`{gpu_queue}` for a GPU `hardware_class`), or a private pool's `{pool}` "
            "(`.{hardware_class}` appended for a GPU class; routing: `worker_pool`), which only "
            "workers whose GPU satisfies the class consume; the worker then claims the job "
            f"over `{names.rpc_queue(JOB_API)}`."
        )
    if GPU_WORKER in flow.consumers and event_type == "job.cancel_requested":
        return "Through a binding for the job id that the worker adds while it runs the job."
    queues = ", ".join(f"`{names.service_queue(service)}`" for service in flow.consumers)
    return f"From the service's events queue: {queues}."


def _event_channel(
    payload: type[EventPayload], names: BrokerNames, schemas: dict[str, Any]
) -> dict[str, Any]:
    flow = FLOWS[payload.event_type]
    params = ROUTING_PARAMETERS.get(payload.event_type, {})
    properties = schemas[payload.__name__]["properties"]
    channel: dict[str, Any] = {
        "description": inspect.cleandoc(payload.__doc__ or f"The `{payload.event_type}` event."),
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": (
                        names.worker_exchange
                        if payload.event_type in WORKER_REPORT_KEYS
                        else names.events_exchange
                    ),
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "x-publishers": list(flow.publishers),
        "x-consumers": list(flow.consumers),
        "x-must-route": payload.must_route,
        **_operations(
            payload.event_type,
            flow,
            _ref("messages", payload.__name__),
            consumed_from=_consumed_from(payload.event_type, flow, names),
            send_bindings=_EVENT_SEND_BINDINGS,
            receive_bindings=_ack(True),
        ),
    }
    if params:
        channel["parameters"] = {
            param: {"description": _parameter_text(payload, field), "schema": properties[field]}
            for field, param in params.items()
        }
    return channel


def _parameter_text(payload: type[EventPayload], field: str) -> str:
    if field == "job_type" and payload.event_type in ("job.created", "job.requeued"):
        return (
            "The payload's `job_type`, followed by `.{hardware_class}` when the job's "
            "`hardware_class` is a GPU class (e.g. `llm_lora.gpu24`): a CPU-class job's key has "
            "the type alone."
        )
    return f"The payload's `{field}`."


def _event_message(payload: type[EventPayload]) -> dict[str, Any]:
    return {
        "name": payload.event_type,
        "title": payload.__name__,
        "summary": f"The `{payload.event_type}` event in its CloudEvents envelope.",
        "contentType": EVENT_CONTENT_TYPE,
        "payload": {
            "allOf": [
                _ref("schemas", Envelope.__name__),
                {
                    "type": "object",
                    "required": ["type", "data"],
                    "properties": {
                        "type": {"const": payload.event_type},
                        "dataversion": {"const": payload.data_version},
                        "data": _ref("schemas", payload.__name__),
                    },
                },
            ]
        },
        "bindings": {
            "amqp": {"messageType": payload.event_type, "bindingVersion": AMQP_BINDING_VERSION}
        },
    }


def _rpc_message(model: type[BaseModel], summary: str) -> dict[str, Any]:
    return {
        "name": model.__name__,
        "title": model.__name__,
        "summary": summary,
        "contentType": RPC_CONTENT_TYPE,
        "payload": _ref("schemas", model.__name__),
        "correlationId": {
            "description": "AMQP `correlation_id`: the reply carries the request's.",
            "location": "$message.header#/correlation_id",
        },
    }


def _rpc_channels(names: BrokerNames) -> dict[str, Any]:
    rpc_queue = names.rpc_queue(JOB_API)
    request = {
        "description": (
            f"Claim requests. A worker that took a job off a work queue sends `ClaimJob` through "
            f"the topic exchange `{names.claims_exchange}` (routing key `{CLAIM_KEY}`, the only "
            "key its broker permissions allow; never the default exchange, which workers may not "
            f"write to) to the queue `{rpc_queue}`, with AMQP `reply_to` and `correlation_id` "
            "set; job-api answers with `ClaimReply`. The request is signed with the worker's "
            "credential (`signature`); one read after its `expires_at` is refused."
        ),
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {"name": rpc_queue, "durable": True, "vhost": "/"},
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        **_operations(
            "ClaimJob",
            CLAIM_FLOW,
            _ref("messages", ClaimJob.__name__),
            consumed_from=f"From the queue `{rpc_queue}`; a request that fails is rejected.",
            receive_bindings=_ack(True),
        ),
    }
    reply = {
        "description": (
            "Claim replies, sent through the default exchange to the queue the request named "
            "in `reply_to`, with the request's `correlation_id`. Best effort: a caller that "
            "gets no reply in time retries with the same `claim_id`."
        ),
        "parameters": {
            "reply_to": {
                "description": "The request's AMQP `reply_to` property.",
                "schema": {"type": "string"},
            }
        },
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {"name": "", "type": "default", "vhost": "/"},
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        **_operations(
            "ClaimReply",
            CLAIM_REPLY_FLOW,
            _ref("messages", ClaimReply.__name__),
            consumed_from="From the caller's exclusive, auto-delete reply queue.",
            receive_bindings=_ack(False),
        ),
    }
    return {rpc_queue: request, REPLY_CHANNEL: reply}


def asyncapi_document(names: BrokerNames | None = None) -> dict[str, Any]:
    names = names or BrokerNames()
    schemas = _component_schemas()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for payload in EVENT_TYPES.values():
        channels[routing_pattern(payload)] = _event_channel(payload, names, schemas)
        messages[payload.__name__] = _event_message(payload)
    channels.update(_rpc_channels(names))
    messages[ClaimJob.__name__] = _rpc_message(ClaimJob, "Command: grant me this job.")
    messages[ClaimReply.__name__] = _rpc_message(
        ClaimReply, "The grant (with the job) or a refusal."
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:finetune-dispatcher:messaging",
        "info": {
            "title": "Finetune Dispatcher messaging",
            "version": version("ftd-contracts"),
            "description": description(names),
        },
        "servers": {
            "rabbitmq": {
                "url": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The deployment's RabbitMQ.",
                "variables": {"host": {"default": "rabbitmq"}, "port": {"default": "5672"}},
            }
        },
        "defaultContentType": EVENT_CONTENT_TYPE,
        "tags": [{"name": name, "description": text} for name, text in SERVICES.items()],
        "channels": channels,
        "components": {"schemas": schemas, "messages": messages},
    }

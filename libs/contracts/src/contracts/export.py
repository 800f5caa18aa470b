"""Writes the contracts out as documentation: JSON Schemas, the catalogue and an AsyncAPI document.

`python -m contracts.export` regenerates `docs/contracts`; with `--check` it changes nothing and
fails when the files there no longer match the models, so a contract cannot change without its
docs. Output is deterministic: sorted keys, 2-space indent, one trailing newline.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from contracts.asyncapi import FLOWS, asyncapi_document, routing_pattern
from contracts.catalogue import Catalogue
from contracts.events import EVENT_TYPES, Envelope
from contracts.hyperparameters import Hyperparameters
from contracts.routing import JOB_API, BrokerNames
from contracts.rpc import ClaimJob, ClaimReply

DEFAULT_OUT = Path("docs/contracts")
REGENERATE = "make contracts"
COMMAND = "uv run python -m contracts.export"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
RPC_MESSAGES: tuple[type[BaseModel], ...] = (ClaimJob, ClaimReply)
# Every file in these folders is named after a contract: one that render() no longer produces
# belongs to a renamed or removed contract, so writing deletes it.
OWNED_DIRS = ("events", "rpc")


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def _hyperparameters_schema() -> dict[str, Any]:
    adapter: TypeAdapter[Hyperparameters] = TypeAdapter(Hyperparameters)
    return _json_schema({"title": "Hyperparameters", **adapter.json_schema()})


def _catalogue() -> dict[str, Any]:
    by_type = Catalogue(include_offline=True).by_type()
    return {
        str(job_type): [m.model_dump(mode="json") for m in models]
        for job_type, models in by_type.items()
    }


def _readme() -> str:
    rpc_queue = BrokerNames().rpc_queue(JOB_API)
    lines = [
        "# Contracts",
        "",
        f"Generated from `libs/contracts` by `{COMMAND}` (`{REGENERATE}`): do not edit by hand.",
        f"`{COMMAND} --check` fails when these files no longer match the models.",
        "",
        "- `asyncapi.json`: AsyncAPI 2.6 for the `finetune.events` exchange, the work queues and",
        f"  the claim RPC on `{rpc_queue}`; all schemas are inlined under `components`.",
        "- `envelope.schema.json`: the CloudEvents envelope every event travels in.",
        "- `events/<type>.schema.json`: the envelope's `data` for each event type.",
        "- `rpc/<name>.schema.json`: the claim request and its reply.",
        "- `hyperparameters.schema.json`: training hyperparameters, one variant per job type.",
        "- `catalogue.json`: the base models per job type, offline entries included.",
        "",
        "| Event | Routing key | Published by | Consumed by |",
        "|---|---|---|---|",
    ]
    for event_type, payload in EVENT_TYPES.items():
        flow = FLOWS[event_type]
        lines.append(
            f"| [`{event_type}`](events/{event_type}.schema.json) | `{routing_pattern(payload)}` "
            f"| {', '.join(flow.publishers)} | {', '.join(flow.consumers) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    """Every generated file: path relative to the output folder -> content."""
    documents: dict[str, Any] = {
        "asyncapi.json": asyncapi_document(),
        "catalogue.json": _catalogue(),
        "envelope.schema.json": _json_schema(Envelope.model_json_schema()),
        "hyperparameters.schema.json": _hyperparameters_schema(),
    }
    for event_type, payload in EVENT_TYPES.items():
        documents[f"events/{event_type}.schema.json"] = _json_schema(payload.model_json_schema())
    for model in RPC_MESSAGES:
        documents[f"rpc/{model.__name__}.schema.json"] = _json_schema(model.model_json_schema())
    files = {path: dump_json(document) for path, document in documents.items()}
    files["README.md"] = _readme()
    return dict(sorted(files.items()))


@dataclass(frozen=True)
class Drift:
    """How a folder differs from render(); empty when it is current."""

    missing: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.extra)

    def report(self, out_dir: Path) -> str:
        lines = [f"{out_dir} is out of date with libs/contracts; run `{REGENERATE}` ({COMMAND})."]
        for label, paths in (
            ("missing", self.missing),
            ("stale", self.stale),
            ("extra", self.extra),
        ):
            lines.extend(f"  {label + ':':9}{path}" for path in paths)
        return "\n".join(lines)


def _on_disk(out_dir: Path) -> dict[str, bytes]:
    if not out_dir.is_dir():
        return {}
    return {
        path.relative_to(out_dir).as_posix(): path.read_bytes()
        for path in sorted(out_dir.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def compare(out_dir: Path, files: dict[str, str] | None = None) -> Drift:
    expected = render() if files is None else files
    actual = _on_disk(out_dir)
    return Drift(
        missing=tuple(path for path in expected if path not in actual),
        stale=tuple(
            path
            for path, content in expected.items()
            if path in actual and actual[path] != content.encode()
        ),
        extra=tuple(path for path in actual if path not in expected),
    )


def write(out_dir: Path, files: dict[str, str] | None = None) -> Drift:
    """Bring `out_dir` up to date; returns what it changed. Unowned extra files are left alone."""
    expected = render() if files is None else files
    drift = compare(out_dir, expected)
    for path in (*drift.missing, *drift.stale):
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(expected[path].encode())
    removed = tuple(path for path in drift.extra if path.split("/", 1)[0] in OWNED_DIRS)
    for path in removed:
        (out_dir / path).unlink()
    return Drift(missing=drift.missing, stale=drift.stale, extra=removed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.export", description="Export the contracts as documentation."
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the folder is not current"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    files = render()
    if args.check:
        drift = compare(out_dir, files)
        if drift:
            print(drift.report(out_dir), file=sys.stderr)
            return 1
        print(f"{out_dir}: {len(files)} files, all current.")
        return 0
    changed = write(out_dir, files)
    for label, paths in (("wrote", changed.missing + changed.stale), ("removed", changed.extra)):
        for path in paths:
            print(f"{label} {out_dir / path}")
    left = compare(out_dir, files).extra
    for path in left:
        print(f"warning: {out_dir / path} is not generated; remove it by hand", file=sys.stderr)
    print(f"{out_dir}: {len(files)} files, {len(changed.missing + changed.stale)} updated.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

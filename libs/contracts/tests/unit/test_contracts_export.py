"""The exported docs: current with the models, deterministic, and a `--check` that means it."""

import json
from pathlib import Path

import pytest

from contracts import export
from contracts.asyncapi import FLOWS, SERVICES, routing_pattern
from contracts.events import EVENT_TYPES
from contracts.routing import JOB_API_BINDINGS


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(parent for parent in here.parents if (parent / "uv.lock").is_file())


def test_docs_are_current() -> None:
    out_dir = _repo_root() / "docs" / "contracts"

    drift = export.compare(out_dir)

    assert not drift, drift.report(out_dir)


def test_render_is_deterministic() -> None:
    assert export.render() == export.render()


def test_json_files_are_sorted_indented_and_end_with_a_newline() -> None:
    for path, content in export.render().items():
        assert content.endswith("\n"), path
        assert not content.endswith("\n\n"), path
        if path.endswith(".json"):
            canonical = json.dumps(
                json.loads(content), indent=2, sort_keys=True, ensure_ascii=False
            )
            assert content == canonical + "\n", path


def test_one_schema_per_event_type_and_rpc_message() -> None:
    paths = set(export.render())

    assert {f"events/{t}.schema.json" for t in EVENT_TYPES} <= paths
    assert {"rpc/ClaimJob.schema.json", "rpc/ClaimReply.schema.json"} <= paths
    assert {"envelope.schema.json", "hyperparameters.schema.json", "catalogue.json"} <= paths


def test_catalogue_lists_offline_entries_by_job_type() -> None:
    catalogue = json.loads(export.render()["catalogue.json"])

    assert set(catalogue) == {"embedding", "classifier", "llm_lora"}
    assert any(entry["offline"] for entry in catalogue["llm_lora"])


def test_every_event_type_has_a_flow_from_a_known_service() -> None:
    assert set(FLOWS) == set(EVENT_TYPES)
    for flow in FLOWS.values():
        assert flow.publishers
        assert set(flow.publishers) | set(flow.consumers) <= set(SERVICES)


def test_job_api_consumes_what_its_queue_is_bound_to() -> None:
    consumed = {t for t, flow in FLOWS.items() if "job-api" in flow.consumers}

    assert consumed == set(JOB_API_BINDINGS)


def test_routing_patterns_name_their_parameters() -> None:
    patterns = {t: routing_pattern(cls) for t, cls in EVENT_TYPES.items()}

    assert patterns["job.created"] == "job.created.{job_type}.{provider}"
    assert patterns["job.requeued"] == "job.requeued.{job_type}.{provider}"
    assert patterns["job.cancel_requested"] == "job.cancel_requested.{job_id}"
    others = set(EVENT_TYPES) - {"job.created", "job.requeued", "job.cancel_requested"}
    assert all(patterns[t] == t for t in others)


def test_asyncapi_has_a_channel_and_message_per_event_and_the_rpc_queue() -> None:
    document = json.loads(export.render()["asyncapi.json"])
    channels = document["channels"]
    messages = document["components"]["messages"]

    assert document["asyncapi"] == "2.6.0"
    assert {routing_pattern(cls) for cls in EVENT_TYPES.values()} | {"job-api.rpc"} <= set(channels)
    assert {cls.__name__ for cls in EVENT_TYPES.values()} | {"ClaimJob", "ClaimReply"} <= set(
        messages
    )
    assert set(channels["job.created.{job_type}.{provider}"]["parameters"]) == {
        "job_type",
        "provider",
    }
    assert channels["job-api.rpc"]["publish"]["message"] == {
        "$ref": "#/components/messages/ClaimJob"
    }
    for name, channel in channels.items():
        for operation in ("publish", "subscribe"):
            if operation in channel:
                ref = channel[operation]["message"]["$ref"]
                assert ref.removeprefix("#/components/messages/") in messages, name
    assert "finetune.work.{job_type}.{provider}" in document["info"]["description"]


def test_asyncapi_references_resolve() -> None:
    document = json.loads(export.render()["asyncapi.json"])

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        target: object = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict), ref
            assert part in target, ref
            target = target[part]


def test_check_fails_on_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main(["--check", "--out", str(tmp_path)]) == 1
    assert "make contracts" in capsys.readouterr().err


def test_write_then_check_passes(tmp_path: Path) -> None:
    assert export.main(["--out", str(tmp_path)]) == 0
    assert export.main(["--check", "--out", str(tmp_path)]) == 0
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == set(export.render())


def test_check_lists_stale_missing_and_extra_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export.main(["--out", str(tmp_path)])
    (tmp_path / "catalogue.json").write_text("{}\n")
    (tmp_path / "events" / "job.created.schema.json").unlink()
    (tmp_path / "events" / "job.renamed.schema.json").write_text("{}\n")
    capsys.readouterr()

    assert export.main(["--check", "--out", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "stale:   catalogue.json" in err
    assert "missing: events/job.created.schema.json" in err
    assert "extra:   events/job.renamed.schema.json" in err


def test_write_removes_leftover_schemas_but_not_other_files(tmp_path: Path) -> None:
    export.main(["--out", str(tmp_path)])
    leftover = tmp_path / "events" / "job.renamed.schema.json"
    leftover.write_text("{}\n")
    notes = tmp_path / "notes.md"
    notes.write_text("mine\n")

    assert export.main(["--out", str(tmp_path)]) == 0

    assert not leftover.exists()
    assert notes.exists()
    assert export.compare(tmp_path).extra == ("notes.md",)


def test_default_folder_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert export.main([]) == 0
    assert (tmp_path / "docs" / "contracts" / "asyncapi.json").is_file()

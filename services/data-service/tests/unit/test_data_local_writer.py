"""The local writer hands what it wrote to the kernel's writeback as the upload goes on, slice by
slice, so the fsync before the answer finds little left; the stored bytes are exact."""

import os
from pathlib import Path

import pytest

from data_service.adapters.storage import WRITEBACK_BYTES, LocalStorage

BLOCK = bytes(range(256)) * (1 << 12)  # 1 MiB


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
def test_written_slices_go_to_writeback_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    storage = LocalStorage(tmp_path)
    writer = storage.writer("datasets/x/data.csv")
    blocks = 2 * WRITEBACK_BYTES // len(BLOCK) + 3
    for _ in range(blocks):
        writer.write(BLOCK)
    writer.commit()

    assert calls == [
        (0, WRITEBACK_BYTES, os.POSIX_FADV_DONTNEED),
        (WRITEBACK_BYTES, WRITEBACK_BYTES, os.POSIX_FADV_DONTNEED),
    ]
    assert storage.path("datasets/x/data.csv").read_bytes() == BLOCK * blocks

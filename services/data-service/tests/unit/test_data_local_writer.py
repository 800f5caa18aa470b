"""The local writer: direct I/O where the filesystem takes it (aligned buffer, buffered tail),
buffered writes handed to the kernel's writeback slice by slice otherwise; the stored bytes are
exact either way, and a refusal midway goes on buffered from where it stopped."""

import errno
import os
import random
from pathlib import Path

import pytest

from data_service.adapters import storage as storage_module
from data_service.adapters.storage import DIRECT_BUFFER_BYTES, WRITEBACK_BYTES, LocalStorage

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
    storage = LocalStorage(tmp_path, direct_io=False)
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


needs_direct = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT here")


def _pieces(total: int, seed: int) -> list[bytes]:
    """`total` random bytes cut at random places (sizes that are not multiples of anything)."""
    rng = random.Random(seed)
    data = rng.randbytes(total)
    cuts = sorted(rng.sample(range(1, total), min(12, total - 1))) if total > 1 else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


@needs_direct
@pytest.mark.parametrize(
    "total",
    [
        0,
        1,
        4095,
        4096,
        4097,
        DIRECT_BUFFER_BYTES,
        DIRECT_BUFFER_BYTES + 3,
        3 * DIRECT_BUFFER_BYTES - 1,
    ],
)
def test_direct_writes_store_the_exact_bytes(tmp_path: Path, total: int) -> None:
    storage = LocalStorage(tmp_path)
    writer = storage.writer("datasets/x/data.csv")
    assert writer.direct, "this filesystem takes O_DIRECT"  # type: ignore[attr-defined]
    pieces = _pieces(total, seed=total)
    for piece in pieces:
        writer.write(piece)
    writer.commit()
    assert storage.path("datasets/x/data.csv").read_bytes() == b"".join(pieces)
    assert list((tmp_path / ".incoming").iterdir()) == []


@needs_direct
def test_a_direct_write_refused_midway_goes_on_buffered_from_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write
    calls = {"n": 0}

    def refuse_the_second(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    storage = LocalStorage(tmp_path)
    writer = storage.writer("datasets/x/data.csv")
    monkeypatch.setattr(storage_module.os, "write", refuse_the_second)
    pieces = _pieces(4 * DIRECT_BUFFER_BYTES + 10, seed=1)
    for piece in pieces:
        writer.write(piece)
    assert not writer.direct  # type: ignore[attr-defined]
    writer.commit()
    assert storage.path("datasets/x/data.csv").read_bytes() == b"".join(pieces)


def test_a_filesystem_that_refuses_direct_io_at_open_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.open
    o_direct = getattr(os, "O_DIRECT", 0)

    def no_direct(path: str, flags: int, mode: int = 0o777) -> int:
        if o_direct and flags & o_direct:
            real(path, os.O_WRONLY | os.O_CREAT, mode)  # as tmpfs once did: created, refused
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, mode)

    monkeypatch.setattr(storage_module.os, "open", no_direct)
    storage = LocalStorage(tmp_path)
    writer = storage.writer("datasets/x/data.csv")
    assert not writer.direct  # type: ignore[attr-defined]
    pieces = _pieces(DIRECT_BUFFER_BYTES + 5, seed=2)
    for piece in pieces:
        writer.write(piece)
    writer.commit()
    assert storage.path("datasets/x/data.csv").read_bytes() == b"".join(pieces)


@needs_direct
def test_an_aborted_direct_write_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = storage.writer("datasets/x/data.csv")
    writer.write(b"x" * (DIRECT_BUFFER_BYTES + 1))
    writer.abort()
    assert not storage.exists("datasets/x/data.csv")
    assert list((tmp_path / ".incoming").iterdir()) == []

"""The upload's chunks are cut into blocks of exactly BLOCK_BYTES, in order, nothing lost."""

import pytest

from data_service.service_layer.ingest import _Blocks
from data_service.service_layer.validation.limits import BLOCK_BYTES

DATA = bytes(range(256)) * ((3 * BLOCK_BYTES + 12345) // 256)


@pytest.mark.parametrize(
    "size", [1, 1000, 65536, BLOCK_BYTES - 1, BLOCK_BYTES, 2 * BLOCK_BYTES + 7]
)
def test_blocks_are_full_sized_and_keep_every_byte(size: int) -> None:
    blocks = _Blocks()
    out: list[bytes] = []
    for start in range(0, len(DATA), size):
        out += blocks.add(DATA[start : start + size])
    assert [len(b) for b in out] == [BLOCK_BYTES] * (len(DATA) // BLOCK_BYTES)
    assert b"".join(out) + blocks.rest() == DATA

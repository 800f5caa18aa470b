"""Malformed files: each a 4xx naming the line (where there is one), nothing stored."""

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from data_service_testing import user_headers
from sqlalchemy.ext.asyncio import AsyncEngine

from data_service.service_layer.validation.limits import Limits

pytestmark = pytest.mark.integration

GOOD = [f"sentence {i},{'a' if i % 2 else 'b'}" for i in range(12)]


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def cls_csv(*bad: str, at: int = 3) -> bytes:
    rows = list(GOOD)
    for offset, line in enumerate(bad):
        rows.insert(at - 2 + offset, line)
    return csv("text,label", *rows)


def jsonl(*lines: str) -> bytes:
    good = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) for i in range(12)]
    return ("\n".join([good[0], *lines, *good[1:]]) + "\n").encode()


# (name, filename, content, expected code, expected line or None, expected column or None)
CASES = [
    ("wrong_columns", "a.csv", csv("foo,bar", *GOOD), "wrong_columns", 1, None),
    ("missing_column", "a.csv", csv("anchor", *GOOD), "wrong_columns", 1, None),
    (
        "extra_column",
        "a.csv",
        csv("text,label,extra", *[g + ",x" for g in GOOD]),
        "wrong_columns",
        1,
        None,
    ),
    ("duplicate_header", "a.csv", csv("text,text", *GOOD), "wrong_columns", 1, None),
    ("too_many_fields", "a.csv", cls_csv("x,y,z"), "wrong_field_count", 3, None),
    ("too_few_fields", "a.csv", cls_csv("lonely", at=5), "wrong_field_count", 5, None),
    ("unclosed_quote", "a.csv", cls_csv('"never closed,a', at=4), "unclosed_quote", 4, None),
    ("empty_value", "a.csv", cls_csv(",a"), "empty_value", 3, "text"),
    ("empty_label", "a.csv", cls_csv("hello,", at=6), "empty_value", 6, "label"),
    ("empty_row_commas", "a.csv", cls_csv(","), "empty_row", 3, None),
    ("blank_line", "a.csv", cls_csv("", at=7), "empty_row", 7, None),
    (
        "one_class",
        "a.csv",
        csv("text,label", *[f"s{i},same" for i in range(12)]),
        "single_class",
        None,
        "label",
    ),
    ("too_few_rows", "a.csv", csv("text,label", "a,x", "b,y"), "too_few_rows", None, None),
    ("header_only", "a.csv", csv("text,label"), "too_few_rows", None, None),
    ("empty_file", "a.csv", b"", "empty_file", None, None),
    ("whitespace_file", "a.csv", b"   \n\n  ", "empty_file", None, None),
    (
        "binary_png",
        "a.csv",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "binary_content",
        3,
        None,
    ),
    ("nul_in_row", "a.csv", cls_csv("hel\x00lo,a", at=4), "binary_content", 4, None),
    (
        "invalid_utf8",
        "a.csv",
        cls_csv("caf\udce9,a".encode("utf-8", "surrogateescape").decode("latin-1"), at=5).replace(
            b"caf\xc3\xa9", b"caf\xe9"
        ),
        "invalid_utf8",
        5,
        None,
    ),
    (
        "latin1_file",
        "a.csv",
        b"text,label\n" + "".join(f"caf\xe9 {i},{i % 2}\n" for i in range(12)).encode("latin-1"),
        "invalid_utf8",
        2,
        None,
    ),
    ("utf16", "a.csv", "text,label\nhi,a\n".encode("utf-16"), "unsupported_encoding", 1, None),
    (
        "huge_field_10mb",
        "a.csv",
        csv("text,label", "a" * (10 << 20) + ",x", *GOOD),
        "line_too_long",
        2,
        None,
    ),
    (
        "multiline_quote_then_bad",
        "a.csv",
        cls_csv('"two\nlines",a', "x,y,z", at=3),
        "wrong_field_count",
        5,
        None,
    ),
    (
        "score_not_number",
        "a.csv",
        csv(
            "sentence1,sentence2,score",
            *[f"a{i},b{i},0.5" for i in range(5)],
            "a,b,high",
            *[f"c{i},d{i},1" for i in range(6)],
        ),
        "not_a_number",
        7,
        "score",
    ),
    (
        "jsonl_broken_line",
        "a.jsonl",
        jsonl('{"instruction": "q", "output": '),
        "invalid_json",
        2,
        None,
    ),
    ("jsonl_not_object", "a.jsonl", jsonl("[1, 2]"), "not_an_object", 2, None),
    (
        "jsonl_wrong_type",
        "a.jsonl",
        jsonl('{"instruction": "q", "output": 5}'),
        "wrong_type",
        2,
        "output",
    ),
    ("jsonl_missing_output", "a.jsonl", jsonl('{"instruction": "q"}'), "missing_keys", 2, "output"),
    (
        "jsonl_empty_output",
        "a.jsonl",
        jsonl('{"instruction": "q", "output": "  "}'),
        "empty_value",
        2,
        "output",
    ),
    ("jsonl_blank_line", "a.jsonl", jsonl(""), "empty_row", 2, None),
    (
        "jsonl_bad_role",
        "a.jsonl",
        ('{"messages": [{"role": "robot", "content": "x"}]}\n' * 12).encode(),
        "invalid_role",
        1,
        "messages[0].role",
    ),
    (
        "jsonl_no_assistant",
        "a.jsonl",
        ('{"messages": [{"role": "user", "content": "x"}]}\n' * 12).encode(),
        "no_assistant_turn",
        1,
        "messages",
    ),
    (
        "jsonl_mixed_shapes",
        "a.jsonl",
        jsonl('{"messages": [{"role": "assistant", "content": "x"}]}'),
        "mixed_shapes",
        2,
        None,
    ),
    (
        "json_array",
        "a.json",
        b'[{"instruction": "q", "output": "a"}]',
        "json_array_not_jsonl",
        1,
        None,
    ),
    # Nested 100,000 deep: a parser would run out of stack (RecursionError, a 500 before).
    (
        "jsonl_deep_nesting",
        "a.jsonl",
        jsonl('{"instruction": ' + "[" * 100_000),
        "nesting_too_deep",
        2,
        None,
    ),
    (
        "jsonl_deep_nesting_in_an_extra_key",
        "a.jsonl",
        jsonl('{"instruction": "q", "output": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "nesting_too_deep",
        2,
        None,
    ),
    (
        "jsonl_deep_nesting_in_a_message",
        "a.jsonl",
        (
            '{"messages": [{"role": "assistant", "content": "x"}]}\n' * 2
            + '{"messages": [{"role": "assistant", "content": "x", "m": '
            + '{"a": ' * 50_000
            + "1"
            + "}" * 50_000
            + "}]}\n"
            + '{"messages": [{"role": "assistant", "content": "y"}]}\n' * 10
        ).encode(),
        "nesting_too_deep",
        3,
        None,
    ),
    (
        "jsonl_field_too_long",
        "a.jsonl",
        jsonl(json.dumps({"instruction": "q", "output": "y" * 200_001})),
        "field_too_long",
        2,
        "output",
    ),
]

# Sent as raw bytes: an HTTP client would percent-encode or strip some of these itself.
FILENAME_CASES = [b"../../x", b"..", b"a/b.csv", b"/etc/passwd", b"bad\x07name.csv", b"x" * 300]


def raw_multipart(filename: bytes, content: bytes) -> tuple[bytes, dict[str, str]]:
    body = (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: text/csv\r\n\r\n'
        + content
        + b"\r\n--BOUNDARY--\r\n"
    )
    return body, {"content-type": "multipart/form-data; boundary=BOUNDARY"}


def _no_trace(storage_dir: Path) -> list[Path]:
    return [p for p in storage_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("name", "filename", "content", "code", "line", "column"), CASES, ids=[c[0] for c in CASES]
)
async def test_malformed_file_is_refused_with_the_line(
    data_client: httpx.AsyncClient,
    data_db: AsyncEngine,
    storage_dir: Path,
    name: str,
    filename: str,
    content: bytes,
    code: str,
    line: int | None,
    column: str | None,
) -> None:
    r = await data_client.post(
        "/api/finetune/upload",
        headers=user_headers(),
        files={"file": (filename, content, "application/octet-stream")},
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_dataset"
    first = error["details"]["errors"][0]
    assert (first["code"], first["line"], first["column"]) == (code, line, column), first
    if line is not None:
        assert f"Line {line}" in error["message"]
    assert _no_trace(storage_dir) == []
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 0
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.outbox")) == 0


@pytest.mark.parametrize(
    "filename", FILENAME_CASES, ids=[f.decode("ascii", "replace")[:20] for f in FILENAME_CASES]
)
async def test_hostile_filename_is_refused(
    data_client: httpx.AsyncClient, storage_dir: Path, filename: bytes
) -> None:
    body, headers = raw_multipart(filename, csv("text,label", *GOOD))
    r = await data_client.post(
        "/api/finetune/upload", headers={**user_headers(), **headers}, content=body
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_filename"
    assert _no_trace(storage_dir) == []


async def test_errors_are_capped(data_client: httpx.AsyncClient, storage_dir: Path) -> None:
    rows = [f"s{i},{i % 2}" if i % 2 else f"s{i},{i},extra" for i in range(500)]
    r = await data_client.post(
        "/api/finetune/upload",
        headers=user_headers(),
        files={"file": ("a.csv", csv("text,label", *rows), "text/csv")},
    )
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    listed = [e["line"] for e in details["errors"]]
    assert len(listed) == Limits().max_errors
    assert listed == sorted(listed)
    assert details["errors_truncated"] is True
    assert "more problems" in r.json()["error"]["message"]


async def test_not_multipart_and_no_file(data_client: httpx.AsyncClient) -> None:
    r = await data_client.post("/api/finetune/upload", headers=user_headers(), content=b"text\nx\n")
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"
    r = await data_client.post(
        "/api/finetune/upload",
        headers=user_headers(),
        data={"job_type": "embedding"},
        files={"other": ("x", b"y")},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "missing_file"

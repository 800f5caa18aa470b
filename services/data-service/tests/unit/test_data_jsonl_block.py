"""The JSON Lines block path: it vouches only for blocks the line-by-line path would accept, with
the same lengths, and the pipeline names the line of anything it refuses."""

import json

import numpy as np
import pytest

from data_service.service_layer.validation.jsonl_block import _plain_block, check_block
from data_service.service_layer.validation.limits import BLOCK_BYTES, Limits
from data_service.service_layer.validation.pipeline import validate_bytes


def lines(*records: dict[str, object], sep: str = "\n") -> bytes:
    return sep.join(json.dumps(r, ensure_ascii=False) for r in records).encode()


GOOD = [
    {"instruction": "plain", "output": "text"},
    {"instruction": "tab\tand\nnewline", "input": "", "output": 'quote " and slash /'},
    {"instruction": "é and 漢字 and 😀", "input": "x", "output": "naïve"},
    {"instruction": "back\\slash", "output": "\u00e9"},
]


@pytest.mark.parametrize("ensure_ascii", [False, True])
@pytest.mark.parametrize("sep", ["\n", "\r\n"])
def test_lengths_are_the_decoded_strings_lengths(ensure_ascii: bool, sep: str) -> None:
    body = sep.join(json.dumps(r, ensure_ascii=ensure_ascii) for r in GOOD).encode()
    block = check_block(body, 1000)
    assert block is not None
    assert block.rows == len(GOOD)
    assert block.instruction.tolist() == [len(str(r["instruction"])) for r in GOOD]
    assert block.output.tolist() == [len(str(r["output"])) for r in GOOD]
    assert block.input.tolist() == [len(str(r["input"])) for r in GOOD if "input" in r]


@pytest.mark.parametrize("separator", [":", ": "])
def test_plain_text_lengths_count_characters(separator: str) -> None:
    records = [
        {"instruction": "café 漢字", "output": "😀", "input": "x"},
        {"instruction": "plain", "output": "text here"},
    ]
    body = "\n".join(
        json.dumps(r, ensure_ascii=False, separators=(",", separator)) for r in records
    ).encode()
    assert b"\\" not in body
    block = check_block(body, 1000)
    assert block is not None
    assert block.instruction.tolist() == [len("café 漢字"), 5]
    assert block.output.tolist() == [1, 9]
    assert block.input.tolist() == [1]


def test_a_repeated_key_counts_once_as_the_decoder_reads_it() -> None:
    body = b'{"instruction":"a","output":"bb","output":"ccc"}\n{"instruction":"d","output":"e"}'
    block = check_block(body, 1000)
    assert block is not None
    assert block.output.tolist() == [3, 1]


def test_compact_and_spaced_json_and_a_null_input() -> None:
    body = (
        b'{"instruction":"a","output":"bb"}\n'
        b'{ "instruction" : "ccc" , "input" : null , "output" : "dddd" }'
    )
    block = check_block(body, 1000)
    assert block is not None
    assert block.instruction.tolist() == [1, 3]
    assert block.output.tolist() == [2, 4]
    assert block.input.tolist() == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"instruction": "a", "output": "b"}\n\n{"instruction": "a", "output": "b"}',
        b'{"instruction": "a", "output": "b"}\n  \n{"instruction": "a", "output": "b"}',
        b'{"instruction": "a", "output": "b"} {"instruction": "a", "output": "b"}',
        # two on one line and a blank line: as many objects as lines, still refused
        b'{"instruction": "a", "output": "b"} {"instruction": "a", "output": "b"}\n\n'
        b'{"instruction": "a", "output": "b"}',
        b'{"instruction": "a",\n"output": "b"}',
        b'{"instruction": "a", "output": "b"}\n',
        b'{"instruction": " ", "output": "b"}',
        b'{"instruction": "a", "output": "\\n\\t"}',
        b'{"instruction": "a", "output": "\\u0020"}',
        '{"instruction": "\u3000", "output": "b"}'.encode(),
        b'{"instruction": "", "output": "b"}',
        b'{"instruction": "a", "output": 1}',
        b'{"instruction": "a", "output": "b", "input": 5}',
        b'{"instruction": "a", "output": "b", "input": {"x": "y"}}',
        b'{"instruction":"a","output":"b","input":["c"]}',
        b'{"instruction": "a\tb", "output": "c"}',
        b'{"instruction": "a", "output": null}',
        b'{"instruction": "a", "response": "b"}',
        b'{"instruction": "a", "output": "b", "extra": "c"}',
        b'{"messages": []}',
        b'[{"instruction": "a", "output": "b"}]',
        b'{"instruction": "' + b"x" * 11 + b'", "output": "b"}',
        b'{"instruction": "a", "output": "b", "input": "' + b"x" * 11 + b'"}',
    ],
)
def test_blocks_the_line_path_must_explain_are_refused(body: bytes) -> None:
    assert check_block(body, 10) is None


def _file(count: int, bad_line: int | None = None, bad: bytes = b"") -> bytes:
    out = []
    for n in range(1, count + 1):
        if n == bad_line:
            out.append(bad)
        else:
            record = {"instruction": f"question {n} " + "w" * (n % 50), "output": f"answer {n}"}
            if n % 3:
                record["input"] = "context é" * (n % 4)
            out.append(json.dumps(record, ensure_ascii=n % 2 == 0).encode())
    return b"\n".join(out) + b"\n"


def test_a_file_of_many_blocks_has_exact_stats() -> None:
    count = 60_000
    data = _file(count)
    assert len(data) > 3 * BLOCK_BYTES
    report = validate_bytes(data, Limits())
    assert report.valid, report.problems.summary()
    assert report.rows == count
    records = [json.loads(line) for line in data.splitlines()]
    lengths = report.stats["text_length"]
    for key in ("instruction", "input", "output"):
        values = [len(r[key]) for r in records if key in r]
        assert lengths[key]["min"] == min(values)
        assert lengths[key]["max"] == max(values)
        assert lengths[key]["mean"] == round(sum(values) / len(values), 1)
        assert sum(lengths[key]["histogram"].values()) == len(values)


@pytest.mark.parametrize(
    ("bad", "code", "key"),
    [
        (b'{"instruction": "x", "output": "   "}', "empty_value", "output"),
        (b'{"instruction": "x", "output": "\\u0020"}', "empty_value", "output"),
        (b"", "empty_row", None),
        (b'{"instruction": "x" "output": "y"}', "invalid_json", None),
        (b'{"instruction": "x"}', "missing_keys", "output"),
    ],
)
def test_a_problem_deep_in_the_file_names_its_line(bad: bytes, code: str, key: str | None) -> None:
    line = 40_000  # well past the first block
    report = validate_bytes(_file(50_000, line, bad), Limits())
    assert not report.valid
    assert [(p.code, p.line, p.column) for p in report.problems.errors] == [(code, line, key)]


def _plain(body: bytes) -> object:
    data = np.frombuffer(body, dtype=np.uint8)
    return _plain_block(body, data, np.flatnonzero(data == 10))


@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")])
def test_the_parser_free_plain_path_measures_canonical_blocks(
    separators: tuple[str, str],
) -> None:
    records = [
        {"output": "b: c, d", "instruction": "a {x} [y]", "input": "xé"},
        {"instruction": "plain", "output": "text"},
    ]
    body = "\n".join(
        json.dumps(r, ensure_ascii=False, separators=separators) for r in records
    ).encode()
    block = _plain(body)
    assert block is not None
    assert block.instruction.tolist() == [9, 5]  # type: ignore[attr-defined]
    assert block.output.tolist() == [7, 4]  # type: ignore[attr-defined]
    assert block.input.tolist() == [2]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        # keys of a name's length, spelled otherwise
        b'{"instructiom": "a", "output": "b"}',
        b'{"instruction": "a", "outpux": "b"}',
        b'{"instruction": "a", "output": "b", "inpus": "c"}',
        b'{"Instruction": "a", "output": "b"}',
        # a key twice, a required key missing, a key of another length
        b'{"instruction": "a", "output": "b", "output": "c"}',
        b'{"instruction": "a", "input": "b"}',
        b'{"instruction": "a", "output": "b", "context": "c"}',
        # separators other than the canonical ones
        b'{"instruction": "a" , "output": "b"}',
        b'{"instruction":  "a", "output": "b"}',
        b'{ "instruction": "a", "output": "b"}',
        b'{"instruction": "a", "output": "b" }',
        b'{"instruction": "a"; "output": "b"}',
        # a record boundary that is not `}` newline `{`
        b'{"instruction": "a", "output": "b"}\n {"instruction": "a", "output": "b"}',
        b'{"instruction": "a", "output": "b"},\n{"instruction": "a", "output": "b"}',
        # a string that is not a value: an array, a bare word around it
        b'{"instruction": ["a"], "output": "b"}',
        b'{"instruction": "a", "output": x"b"}',
    ],
)
def test_the_plain_path_vouches_for_nothing_else(body: bytes) -> None:
    assert _plain(body) is None

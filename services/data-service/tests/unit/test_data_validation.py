"""Validation without I/O: every accepted shape and how it is inferred, stats, line numbers."""

import json

import pytest

from data_service.entrypoints.preview import preview_rows
from data_service.entrypoints.routes_upload import safe_filename
from data_service.service_layer.validation.limits import Limits
from data_service.service_layer.validation.pipeline import validate_bytes
from servicekit.errors import ApiError

LIMITS = Limits(min_rows=3)


def csv(header: str, *rows: str, newline: str = "\n") -> bytes:
    return newline.join([header, *rows, ""]).encode()


@pytest.mark.parametrize(
    ("content", "shape", "job_type", "rows"),
    [
        (csv("text", "one", "two", "three"), "sentences", "embedding", 3),
        (csv("anchor,positive", "a,b", "c,d", "e,f"), "pairs", "embedding", 3),
        (csv("anchor,positive,negative", "a,b,c", "d,e,f", "g,h,i"), "triplets", "embedding", 3),
        (
            csv("sentence1,sentence2,score", "a,b,0.5", "c,d,1", "e,f,0"),
            "scored_pairs",
            "embedding",
            3,
        ),
        (csv("text,label", "a,x", "b,y", "c,x"), "classification", "classifier", 3),
        (csv("Label , TEXT", "x,a", "y,b", "x,c"), "classification", "classifier", 3),
        (csv("text;label", "a;x", "b;y", "c;x"), "classification", "classifier", 3),
        (csv("text\tlabel", "a\tx", "b\ty", "c\tx"), "classification", "classifier", 3),
        (csv("text,label", "a,x", "b,y", "c,x", newline="\r\n"), "classification", "classifier", 3),
        (
            b"\xef\xbb\xbf" + csv("text,label", "a,x", "b,y", "c,x"),
            "classification",
            "classifier",
            3,
        ),
        (
            csv("text,label", '"multi\nline, with comma",x', '"say ""hi""",y', "c,x"),
            "classification",
            "classifier",
            3,
        ),
        (
            b"".join(
                json.dumps({"instruction": f"i{n}", "output": "o"}).encode() + b"\n"
                for n in range(3)
            ),
            "instruction",
            "llm_lora",
            3,
        ),
        (
            b"".join(
                json.dumps({"instruction": f"i{n}", "input": "", "response": "o"}).encode() + b"\n"
                for n in range(3)
            ),
            "instruction",
            "llm_lora",
            3,
        ),
        (
            b"".join(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"q{n}"},
                            {"role": "assistant", "content": "a"},
                        ]
                    }
                ).encode()
                + b"\n"
                for n in range(3)
            ),
            "chat",
            "llm_lora",
            3,
        ),
    ],
)
def test_accepted_shapes_are_inferred(content: bytes, shape: str, job_type: str, rows: int) -> None:
    report = validate_bytes(content, LIMITS)
    assert report.valid, report.as_dict()
    assert report.shape == shape
    assert report.job_types == [job_type]
    assert report.rows == rows


def test_stats_report_labels_lengths_tokens_and_duplicates() -> None:
    report = validate_bytes(csv("text,label", "abcd,x", "abcdefgh,y", "abcd,x", "zz,x"), LIMITS)
    stats = report.stats
    assert stats["label_distribution"] == {"x": 3, "y": 1}
    assert stats["classes"] == 2
    assert stats["text_length"]["text"]["min"] == 2
    assert stats["text_length"]["text"]["max"] == 8
    assert stats["estimated_tokens"] == (4 + 8 + 4 + 2) // 4
    assert stats["duplicate_rows"] == 1
    assert report.problems.warnings[0].code == "duplicate_row"
    assert report.problems.warnings[0].line == 4


def test_lines_count_newlines_inside_quoted_values() -> None:
    content = csv("text,label", '"one\ntwo\nthree",x', "fine,y", ",x")
    report = validate_bytes(content, LIMITS)
    assert [(p.code, p.line, p.column) for p in report.problems.errors] == [
        ("empty_value", 6, "text")
    ]


def test_job_type_given_must_match_the_file() -> None:
    report = validate_bytes(csv("text", "a", "b", "c"), LIMITS, job_type="classifier")
    assert report.problems.errors[0].code == "job_type_mismatch"


@pytest.mark.parametrize("name", ["train.csv", "my data (v2).jsonl", "données.csv"])
def test_plain_filenames_are_kept(name: str) -> None:
    assert safe_filename(name) == name


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "..", "\x00x", None, ""])
def test_path_like_filenames_are_refused(name: str | None) -> None:
    with pytest.raises(ApiError) as info:
        safe_filename(name)
    assert info.value.code == "invalid_filename"


def test_preview_leaves_out_a_record_cut_by_the_read() -> None:
    head = b"text,label\na,x\nb,y\nc,"
    rows, truncated = preview_rows(head, "csv", ["text", "label"], 10, complete=False)
    assert rows == [{"text": "a", "label": "x"}]
    assert truncated is False
    rows, truncated = preview_rows(b'{"a": 1}\n{"a": 2}\n', "jsonl", [], 1, complete=True)
    assert rows == [{"a": 1}]
    assert truncated is True

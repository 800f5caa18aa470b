"""CSV column facts read off pyarrow's buffers: lengths in characters, lines across quoted
newlines."""

import pytest

from data_service.service_layer.validation.csv_validator import CsvValidator
from data_service.service_layer.validation.limits import Limits
from data_service.service_layer.validation.pipeline import validate_bytes


def test_csv_lengths_and_lines_count_characters_not_bytes() -> None:
    content = ('text,label\n"naïve\ncafé, 漢字",x\n😀😀,y\n"two\nnew\nlines",x\n,y\n').encode()
    report = validate_bytes(content, Limits(min_rows=3))
    assert [(p.code, p.line, p.column) for p in report.problems.errors] == [
        ("empty_value", 8, "text")
    ]
    lengths = report.stats["text_length"]["text"]
    assert (lengths["min"], lengths["max"]) == (0, len("naïve\ncafé, 漢字"))


def test_a_header_not_in_lower_case_still_reads_every_column_as_text() -> None:
    # Numeric labels under "Label": read as strings too (pyarrow matches the header as written).
    report = validate_bytes(b"Text ,LABEL\na,0\nb,1\nc,0\n", Limits(min_rows=3))
    assert report.valid, report.problems.summary()
    assert report.stats["label_distribution"] == {"0": 2, "1": 1}


def test_a_failure_inside_the_checks_is_raised_not_reported_as_a_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: CsvValidator, *args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(CsvValidator, "_check_rows", broken)
    with pytest.raises(RuntimeError, match="bug"):
        validate_bytes(b"text,label\na,x\nb,y\nc,x\n", Limits(min_rows=3))

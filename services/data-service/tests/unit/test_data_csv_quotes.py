"""A quote left open is named on its line; reports list errors by line, up to the cap."""

import random

import pytest

from data_service.service_layer.validation.csv_quotes import QuoteScanner
from data_service.service_layer.validation.limits import BLOCK_BYTES, Limits
from data_service.service_layer.validation.pipeline import validate_bytes

LIMITS = Limits(min_rows=3)
LABELS = ("pos", "neg")


def rows(n: int, *, quoted: bool) -> list[str]:
    """Data rows for lines 2..n+1 (the header is line 1)."""
    text = '"text, number {}"' if quoted else "text number {}"
    return [f"{text.format(line)},{LABELS[line % 2]}" for line in range(2, n + 2)]


def build(lines: list[str]) -> bytes:
    return ("text,label\n" + "\n".join(lines) + "\n").encode()


def found(content: bytes, limits: Limits = LIMITS) -> list[tuple[str, int | None]]:
    return [(p.code, p.line) for p in validate_bytes(content, limits).problems.errors]


def test_a_quote_left_open_on_line_800_of_a_quoted_file_is_named() -> None:
    lines = rows(999, quoted=True)
    lines[800 - 2] = '"text, number 800,pos'  # its closing quote is missing
    report = validate_bytes(build(lines), LIMITS)
    assert not report.valid
    assert [(p.code, p.line) for p in report.problems.errors] == [("unclosed_quote", 800)]
    assert "line 801" in report.problems.errors[0].message


def test_a_quote_left_open_until_a_quote_100_lines_on_is_named() -> None:
    lines = rows(999, quoted=False)
    lines[800 - 2] = '"text, number 800,pos'
    lines[900 - 2] = '"text, number 900",neg'
    report = validate_bytes(build(lines), LIMITS)
    assert [(p.code, p.line) for p in report.problems.errors] == [("unclosed_quote", 800)]
    assert "lines 800-900" in report.problems.errors[0].message


def test_a_one_column_file_whose_quote_never_closes_is_refused() -> None:
    # One field per record: pyarrow's field count cannot notice the rest of the file vanishing.
    content = (
        "text\n" + "\n".join(f"sentence {i}" for i in range(20)) + '\n"open\nmore\n'
    ).encode()
    assert found(content) == [("unclosed_quote", 22)]


def test_an_unclosed_quote_at_the_end_is_reported_once() -> None:
    lines = rows(30, quoted=False)
    lines[25 - 2] = '"text number 25,pos'
    assert found(build(lines)) == [("unclosed_quote", 25)]


@pytest.mark.parametrize(
    "body",
    [
        '"multi\nline, with comma",x\n"say ""hi""",y\nc,x\n',
        '"""",x\nplain,y\n"""quoted""",x\n',
        '5" screen,x\nthe ""best"" one,y\nc,x\n',
        '"spans\r\nlines",x\r\nb,y\r\n"c",x\r\n',
        '"a","x"\n"b","y"\n"c","x"\n',
        '"a"b,x\nc,y\nd,x\n',  # text after a closing quote on its own line loses no row
    ],
)
def test_well_formed_and_lenient_quoting_is_accepted(body: str) -> None:
    assert found(("text,label\n" + body).encode()) == []


def test_tab_delimited_quotes() -> None:
    assert found(b'text\tlabel\n"a\tb"\tx\n"c\nd"\ty\ne\tx\n') == []
    assert found(b'text\tlabel\n"a\tx\n"b"\ty\nc\tx\nd\ty\n') == [("unclosed_quote", 2)]


def test_quotes_across_block_boundaries() -> None:
    filler = "x" * 60
    lines, size = [], 0
    while size < BLOCK_BYTES - 500:
        lines.append(f"{filler} {len(lines)},{LABELS[len(lines) % 2]}")
        size += len(lines[-1]) + 1
    head = build(lines)
    # A quoted field whose doubled quote is cut by the first block boundary: '"a "' ends the
    # block, '"b ""c""",y' begins the next.
    head += b"p" * (BLOCK_BYTES - len(head) - len(b",x\n") - len(b'"a "')) + b",x\n"
    first = head + b'"a "' + b'"b ""c""",y\n'
    assert first[BLOCK_BYTES - 1 : BLOCK_BYTES + 1] == b'""'
    opened = first.count(b"\n") + 1 + 100
    # Then a quote left open in the second block and closed by accident in the third.
    tail = [f"{filler} t{i},{LABELS[i % 2]}" for i in range(20_000)]
    tail[100] = '"left open,x'
    tail[19_000] = '"closes it",y'
    content = first + ("\n".join(tail) + "\n").encode()
    assert len(content) > 2 * BLOCK_BYTES
    assert content.index(b'"left open') < 2 * BLOCK_BYTES < content.index(b'"closes it')
    assert found(content) == [("unclosed_quote", opened)]


def reference(data: bytes, delimiter: int) -> list[tuple[int, int | None]]:
    """Byte by byte, as pyarrow reads quotes: what the scanner must report."""
    separators = {delimiter, 0x0A, 0x0D}
    out: list[tuple[int, int | None]] = []
    inside, line, open_line, i = False, 1, 0, 0
    while i < len(data):
        c = data[i]
        if c == 0x22:
            if inside:
                if i + 1 < len(data) and data[i + 1] == 0x22:
                    i += 2
                    continue
                inside = False
                follows = data[i + 1] if i + 1 < len(data) else 0x0A
                if follows not in separators and line > open_line:
                    out.append((open_line, line))
            elif i == 0 or data[i - 1] in separators:
                inside, open_line = True, line
        elif c == 0x0A:
            line += 1
        i += 1
    if inside:
        out.append((open_line, None))
    return out


def test_the_scanner_agrees_with_a_byte_by_byte_reading() -> None:
    rng = random.Random(1234)
    for _ in range(4000):
        data = bytes(rng.choice(b'ab,"""\n\r;') for _ in range(rng.randint(0, 60)))
        delimiter = rng.choice(b",;")
        seen: list[tuple[int, int | None]] = []
        scanner = QuoteScanner(chr(delimiter), lambda a, b, seen=seen: seen.append((a, b)))
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(len(data) + 1, rng.randint(0, 5))))
        start = 0
        for cut in [*cuts, len(data)]:
            scanner.feed(data[start:cut], data.count(b"\n", 0, start))
            start = cut
        scanner.finish()
        assert seen == reference(data, delimiter), data


def test_errors_are_listed_by_line() -> None:
    # Within a batch pyarrow hands over the rows with a wrong field count before the rest.
    lines = rows(20, quoted=False)
    lines[9 - 2] = "too,many,fields"
    lines[3 - 2] = ",pos"
    assert found(build(lines)) == [("empty_value", 3), ("wrong_field_count", 9)]


def test_the_cap_keeps_the_first_errors_in_line_order() -> None:
    lines = rows(400, quoted=False)
    for line in range(2, 402, 2):
        lines[line - 2] = f"s{line},{line},extra" if line % 4 else f",{LABELS[0]}"
    report = validate_bytes(build(lines), Limits(min_rows=3))
    listed = [p.line for p in report.problems.errors]
    assert len(listed) == Limits().max_errors
    assert listed == list(range(2, 2 + 2 * len(listed), 2))
    assert report.as_dict()["errors_truncated"] is True

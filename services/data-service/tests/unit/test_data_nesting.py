"""The nesting depth of a JSON line, read off its bytes: brackets in strings (escaped quotes
included) do not count, and a line is refused past the limit with its line number, however deep
(a parser would have recursed out of stack)."""

import json

import pytest

from data_service.domain.report import Problems
from data_service.service_layer.validation.jsonl_validator import JsonlValidator
from data_service.service_layer.validation.limits import Limits
from data_service.service_layer.validation.nesting import may_nest_deeper, nesting_depth


@pytest.mark.parametrize(
    ("line", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b'"[[["', 0),
        (b"{}", 1),
        (b'{"a": "x"}', 1),
        (b'{"a": [1, [2, {"b": 3}]]}', 4),
        (b'{"a": "[[[[", "b": ["{"]}', 2),
        (rb'{"a": "quote \" then [[[", "b": 1}', 1),
        (rb'{"a": "backslash \\", "b": [[1]]}', 3),
        (rb'{"a": "two \\\" [[", "b": 1}', 1),
        (b"[" * 1000, 1000),
        (b"[" * 10 + b"]" * 10 + b"[[", 10),
    ],
)
def test_depth_counts_only_structure(line: bytes, depth: int) -> None:
    assert nesting_depth(line) == depth
    try:
        parsed_depth = _depth(json.loads(line))
    except (ValueError, RecursionError):  # not JSON, or too deep for Python's own parser
        return
    assert parsed_depth == depth


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_the_quick_count_never_clears_a_line_that_is_too_deep() -> None:
    line = b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}"
    assert may_nest_deeper(line, 64)
    assert not may_nest_deeper(b'{"a": [[1]]}', 64)


def _validate(*lines: bytes, max_nesting: int = 64) -> Problems:
    problems = Problems(max_errors=20)
    validator = JsonlValidator(Limits(max_nesting=max_nesting), problems)
    validator.feed(b"\n".join(lines) + b"\n")
    validator.finish()
    return problems


GOOD = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}).encode() for i in range(12)]


@pytest.mark.parametrize(
    "deep",
    [
        b'{"instruction": ' + b"[" * 100_000,
        b'{"instruction": "q", "output": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"messages": [{"role": "user", "content": "c", "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}]}",
    ],
)
def test_a_line_too_deep_is_a_problem_on_its_line(deep: bytes) -> None:
    problems = _validate(*GOOD[:3], deep, *GOOD[3:])

    [problem] = problems.errors
    assert (problem.code, problem.line) == ("nesting_too_deep", 4)
    assert "the limit is 64" in problem.message


def test_the_limit_itself_is_allowed_and_one_more_is_not() -> None:
    def extra(depth: int) -> bytes:
        inner = b"[" * (depth - 1) + b"]" * (depth - 1)
        return b'{"instruction": "q", "output": "a", "x": ' + inner + b"}"

    assert _validate(*GOOD, extra(5), max_nesting=5).errors == []
    [problem] = _validate(*GOOD, extra(6), max_nesting=5).errors
    assert (problem.code, problem.line) == ("nesting_too_deep", 13)

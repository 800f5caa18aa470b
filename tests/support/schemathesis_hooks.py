"""Imported by the schemathesis CLI in the OpenAPI conformance test (SCHEMATHESIS_HOOKS).

Works around a CPython 3.11 bug, not one of ours: hypothesis describes a filter lambda by parsing
its source with `ast.parse`, which on 3.11.7 sometimes raises "SystemError: AST constructor
recursion depth mismatch" when called deep in a worker thread's stack; schemathesis then reports
a runtime error for the operation. The description is only a repr, so fall back to a plain one.
"""

from typing import Any

from hypothesis.internal import lambda_sources

_describe = lambda_sources.lambda_description


def _lambda_description(f: Any) -> str:
    try:
        return _describe(f)
    except SystemError:
        return "lambda"


lambda_sources.lambda_description = _lambda_description

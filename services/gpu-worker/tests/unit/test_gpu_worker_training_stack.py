"""A training test skipped for a missing torch is an error where FTD_REQUIRE_TRAINING_STACK says
the stack is installed (`make test`), and a skip as before where it does not (training_stack)."""

import sys

import pytest

pytest_plugins = ["pytester"]

CONFTEST = "from training_stack import pytest_make_collect_report, pytest_runtest_makereport\n"
# As a module of a box without torch: the import fails, so importorskip skips the module.
NO_TORCH = """
import pytest

torch = pytest.importorskip("torch")


def test_trains():
    pass
"""
IN_A_TEST = """
import pytest


def test_logs_to_wandb():
    pytest.importorskip("wandb")


def test_needs_a_gpu():
    pytest.skip("no CUDA GPU here")


def test_needs_litellm():
    pytest.importorskip("litellm")


def test_runs():
    pass
"""


@pytest.fixture
def box(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A test session where torch, wandb and litellm do not import."""
    for module in ("torch", "wandb", "litellm"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delenv("FTD_REQUIRE_TRAINING_STACK", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_without_the_requirement_a_missing_torch_skips(box: pytest.Pytester) -> None:
    box.makepyfile(test_no_torch=NO_TORCH)
    box.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)


def test_where_the_stack_is_required_a_missing_torch_is_an_error(
    box: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTD_REQUIRE_TRAINING_STACK", "1")
    box.makepyfile(test_no_torch=NO_TORCH)
    result = box.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*torch does not import, but FTD_REQUIRE_TRAINING_STACK=1*run scripts/install-training.sh*"
        ]
    )


def test_only_skips_for_the_training_stack_fail(
    box: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTD_REQUIRE_TRAINING_STACK", "1")
    box.makepyfile(test_in_a_test=IN_A_TEST)
    result = box.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(failed=1, skipped=2, passed=1)
    result.stdout.fnmatch_lines(["FAILED*test_logs_to_wandb*"])


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_a_requirement_turned_off_is_no_requirement(
    box: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FTD_REQUIRE_TRAINING_STACK", value)
    box.makepyfile(test_no_torch=NO_TORCH)
    box.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)

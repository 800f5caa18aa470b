"""How `make test` spreads the suite over processes (pytest-xdist, `--dist loadgroup`).

Every test joins a group, and a group runs whole on one process:
- the tests that drive `make dev` (the `dev_platform` fixture) are two groups of about the same
  length, each served by the one `make dev` its process starts (README tour and serving; SDK and
  CLI and the openai example): two `make dev`s side by side, each a few minutes shorter than one;
- tests/security is one group (its session stack is started once);
- every other module is its own group, so a module's fixtures (an e2e stack, a private broker,
  a migrated database) are set up once, as without xdist.

Groups that start a whole stack are sent out first: the long ones then overlap the many short
ones instead of finishing last. At the end the slowest groups are listed with their time (set-up,
call and teardown of their tests): the longest one is the least `make test` can take, and with
the CPU their process and the processes it started and waited for used (the run is bound by CPU on
a small machine, so CPU is what a group costs the others). Without xdist this file changes nothing.
"""

import resource
import sys
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# pytest keeps each test module it has rewritten (its assertions) as a .pyc beside it, unless
# bytecode writing is off (PYTHONDONTWRITEBYTECODE, set on some CI machines): then every process
# of every run rewrites and compiles all of them again, about 10 s of CPU per process here. The
# cache is pytest's own (tagged with its version), under the tests' __pycache__ folders.
sys.dont_write_bytecode = False

# Groups that start a platform of their own (minutes each): dispatched before the rest.
_FIRST = ("make-dev", "tests/security", "tests/e2e/", "tests/readme", "tests/sdk")


# The `make dev` tests by where they are: the first group, the rest in the second.
_MAKE_DEV_FIRST = ("tests/readme/", "tests/e2e/test_e2e_serving.py")


def _group(item: pytest.Item) -> str:
    path = item.path.resolve().relative_to(ROOT).as_posix()
    if "dev_platform" in getattr(item, "fixturenames", ()):
        return "make-dev-1" if path.startswith(_MAKE_DEV_FIRST) else "make-dev-2"
    if path.startswith("tests/security/"):
        return "tests/security"
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The controller sees --dist loadgroup; its workers, which collect and run the tests, see
    # dist "no" and xdist's own `loadgroup` flag (xdist/remote.py). Their marks are what count:
    # xdist turns them into the node ids' "@group" that its scheduler groups by.
    if config.getoption("dist", "no") != "loadgroup" and not getattr(
        config.option, "loadgroup", False
    ):
        return
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(_group(item)))

    def heavy_first(item: pytest.Item) -> int:
        mark = item.get_closest_marker("xdist_group")
        name = str(mark.args[0]) if mark and mark.args else ""
        return 0 if name.startswith(_FIRST) else 1

    items.sort(key=heavy_first)  # stable: the order within each group is kept


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (a stack's services)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_cpu_mark = [0.0]


def pytest_runtest_logstart() -> None:
    _cpu_mark[0] = _cpu_seconds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, None]:
    # On the process that runs the test: the CPU each phase used travels to the controller with
    # the report (user_properties are part of what xdist sends back).
    outcome = yield
    now = _cpu_seconds()
    outcome.get_result().user_properties.append(("cpu_seconds", now - _cpu_mark[0]))
    _cpu_mark[0] = now


# Seconds (wall, CPU) spent in each group's tests, from the reports the controller receives
# (node id "...@group").
_GROUP_SECONDS: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    at = report.nodeid.rfind("@")
    if at > report.nodeid.rfind("]"):
        totals = _GROUP_SECONDS[report.nodeid[at + 1 :]]
        totals[0] += report.duration
        totals[1] += sum(
            v for k, v in report.user_properties if k == "cpu_seconds" and isinstance(v, float)
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _GROUP_SECONDS:
        return
    total_cpu = sum(cpu for _, cpu in _GROUP_SECONDS.values())
    terminalreporter.write_sep(
        "=", "slowest 10 groups (each runs whole on one process; CPU: it and what it started)"
    )
    slowest = sorted(_GROUP_SECONDS.items(), key=lambda kv: kv[1][0], reverse=True)[:10]
    for group, (seconds, cpu) in slowest:
        terminalreporter.write_line(f"{seconds:8.2f}s {cpu:8.2f}s CPU  {group}")
    terminalreporter.write_sep("-", f"most CPU (all groups together: {total_cpu:.0f}s)")
    hungry = sorted(_GROUP_SECONDS.items(), key=lambda kv: kv[1][1], reverse=True)[:15]
    for group, (seconds, cpu) in hungry:
        terminalreporter.write_line(f"{cpu:8.2f}s CPU {seconds:8.2f}s  {group}")

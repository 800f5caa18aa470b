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
call and teardown of their tests): the longest one is the least `make test` can take. Without
xdist this file changes nothing.
"""

from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

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


# Seconds spent in each group's tests, from the reports the controller receives (node id "...@group").
_GROUP_SECONDS: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    at = report.nodeid.rfind("@")
    if at > report.nodeid.rfind("]"):
        _GROUP_SECONDS[report.nodeid[at + 1 :]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _GROUP_SECONDS:
        return
    terminalreporter.write_sep("=", "slowest 10 groups (each runs whole on one process)")
    slowest = sorted(_GROUP_SECONDS.items(), key=lambda kv: kv[1], reverse=True)[:10]
    for group, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.2f}s {group}")

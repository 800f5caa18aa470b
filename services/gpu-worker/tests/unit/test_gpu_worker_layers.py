"""The worker's package keeps the services' four layers: dependencies point inwards (domain <-
service_layer <- adapters <- entrypoints, with the trainers beside the service layer on the
domain), the domain and the service layer import no library of the world outside, no modules
import each other in a circle, and none grows past 400 lines."""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "gpu_worker"
MAX_LINES = 400

# What each layer may import besides the standard library: the layer itself and those inside it.
ALLOWED = {
    "domain": {"contracts", "gpu_worker.domain"},
    "service_layer": {
        "contracts",
        "structlog",
        "tenacity",
        "gpu_worker.domain",
        "gpu_worker.service_layer",
    },
}
# What the outer layers must not import.
FORBIDDEN = {
    "training": ("gpu_worker.service_layer", "gpu_worker.adapters", "gpu_worker.entrypoints"),
    "adapters": ("gpu_worker.entrypoints", "gpu_worker.training"),
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from gpu_worker.adapters import hardware` imports a module too.
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def within(name: str, prefixes: set[str] | tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("inner", sorted(ALLOWED))
def test_the_inner_layers_import_only_what_they_may(inner: str) -> None:
    strays = {
        f"{name}: {target}"
        for name, path in modules()
        if layer(name) == inner
        for target in imported(path)
        if target.split(".")[0] not in sys.stdlib_module_names
        and not within(target, ALLOWED[inner])
        # `from gpu_worker.domain import errors` names gpu_worker.domain.errors: fine.
        and not within(target.rsplit(".", 1)[0], ALLOWED[inner])
    }
    assert not strays, f"{inner} imports outside its layer: {sorted(strays)}"


@pytest.mark.parametrize("outer", sorted(FORBIDDEN))
def test_the_outer_layers_depend_inwards(outer: str) -> None:
    strays = {
        f"{name}: {target}"
        for name, path in modules()
        if layer(name) == outer
        for target in imported(path)
        if within(target, FORBIDDEN[outer])
    }
    assert not strays, f"{outer} imports an outer layer: {sorted(strays)}"


def test_no_modules_import_each_other_in_a_circle() -> None:
    known = dict(modules())
    graph = {
        name: {t for t in imported(path, top_level_only=True) if t in known and t != name}
        for name, path in known.items()
    }
    # A package imports its own modules in __init__; what matters is module to module.
    for name in graph:
        graph[name] -= {t for t in graph[name] if name.startswith(f"{t}.")}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError(
                f"import cycle: {' -> '.join([*trail[trail.index(name) :], name])}"
            )
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: n for name, path in modules() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"


def test_the_rules_see_the_layers() -> None:
    """A rule over no modules passes whatever the code does."""
    layers = {layer(name) for name, _ in modules()}
    assert {"domain", "service_layer", "adapters", "entrypoints", "training"} <= layers

"""The layout's import rule (docs/architecture.md, "What may import what"), checked on every ``import`` in the
package, the ones inside functions included: a lazy import is still a dependency."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "ws4redis"

# Lower layers never import higher ones. ``common`` is what every layer may use.
LAYERS = ("core", "common", "broker", "integration", "runtime", "servers")
COMMON = {"settings", "exceptions", "metrics", "configuration", "signals", "protocol"}
# Modules outside the layers: Django's fixed places, the package itself, the users' test kit.
UMBRELLA = {"__init__", "apps", "models", "testing", "management", "templatetags"}
# The pure core may use the standard library, itself and the metrics counters, nothing that does I/O or needs Django.
CORE_FORBIDDEN = ("gevent", "asyncio", "redis", "django", "uwsgi", "socket", "threading", "selectors")
# Old paths kept as aliases for users (0.6's and ours); nothing inside the package may import through them.
ALIASES = {
    path.stem if path.parent == PACKAGE else f"{path.parent.name}.{path.stem}"
    for path in [*PACKAGE.glob("*.py"), *PACKAGE.glob("asgi/*.py"), *PACKAGE.glob("transports/*.py")]
    if "this path stays an alias" in path.read_text()
}


def _module_of(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _layer(module: str) -> str | None:
    head = module.split(".")[0]
    if head in LAYERS:
        return head
    if head in COMMON:
        return "common"
    return None


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, as ``(line, dotted name)``; ws4redis' own without the ``ws4redis.`` prefix."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ws4redis":
                found += [(node.lineno, f"ws4redis.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _sources() -> list[pathlib.Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if _module_of(path).split(".")[0] not in ALIASES]


def _layer_problems() -> list[str]:
    problems = []
    for path in _sources():
        source = _module_of(path)
        mine = _layer(source)
        for line, target in _imports(path):
            if not target.startswith("ws4redis."):
                continue
            name = target.removeprefix("ws4redis.")
            if name in ALIASES or (name.split(".")[0] in ALIASES and name.split(".")[0] not in LAYERS):
                problems.append(f"{path.relative_to(PACKAGE)}:{line} imports the alias ws4redis.{name}")
                continue
            theirs = _layer(name)
            if mine is None or theirs is None or mine == theirs == "common":
                continue
            if source.startswith("core") and name != "metrics" and theirs != "core":
                problems.append(f"{path.relative_to(PACKAGE)}:{line}: the core imports ws4redis.{name}")
            elif LAYERS.index(theirs) > LAYERS.index(mine) and not (mine == "core" and name == "metrics"):
                problems.append(f"{path.relative_to(PACKAGE)}:{line}: {mine} imports {theirs} (ws4redis.{name})")
            elif source.startswith("runtime.") and name.startswith("runtime."):
                a, b = source.split(".")[1], name.split(".")[1]
                if {a, b} == {"gevent", "asyncio"}:
                    problems.append(f"{path.relative_to(PACKAGE)}:{line}: runtime.{a} imports runtime.{b}")
    return problems


def test_no_layer_imports_a_higher_one_or_an_alias() -> None:
    assert _layer_problems() == []


def test_the_core_imports_nothing_that_does_io() -> None:
    problems = [
        f"{path.relative_to(PACKAGE)}:{line} imports {target}"
        for path in PACKAGE.joinpath("core").rglob("*.py")
        for line, target in _imports(path)
        if target.split(".")[0] in CORE_FORBIDDEN
    ]
    assert problems == []


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_every_former_path_is_the_same_module(old: str) -> None:
    """Users' imports (0.6's ``ws4redis.redis_store``, ours such as ``ws4redis.hub``) and monkeypatching through them
    reach the one module that runs, not a copy."""
    alias = importlib.import_module(f"ws4redis.{old}")
    assert alias.__name__ != f"ws4redis.{old}"
    assert importlib.import_module(alias.__name__) is alias

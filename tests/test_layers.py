"""The package's architecture, checked: imports go only down the declared layers
(wanda_core.LAYERS, bottom first), no import cycle between modules, no module over 400 lines."""
import ast
from pathlib import Path

import pytest

import wanda_core

PKG = Path(wanda_core.__file__).parent
MAX_LINES = 400


def _name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The wanda_core modules `name` imports anywhere in its file (lazy imports in functions too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` the module mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    """Index in wanda_core.LAYERS of the layer holding `name`; the package's own __init__/__main__ sit on top."""
    rest = name.removeprefix("wanda_core.")
    for i, layer in enumerate(wanda_core.LAYERS):
        if rest == layer or rest.startswith(layer + "."):
            return i
    if name in ("wanda_core", "wanda_core.__main__"):
        return len(wanda_core.LAYERS)
    raise AssertionError(f"{name} is in no layer of wanda_core.LAYERS {wanda_core.LAYERS}")


def test_graph_sees_known_imports():
    # the parser itself: a few imports that exist, in each form (absolute, from-package, lazy)
    assert "wanda_core.prune.blocks" in GRAPH["wanda_core.prune.engine"]
    assert "wanda_core.models.hub" in GRAPH["wanda_core.models.loaders"]
    assert "wanda_core.runs.config" in GRAPH["wanda_core"]  # a lazy import inside __getattr__


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_is_in_a_layer(name):
    _layer(name)


def test_no_upward_import():
    up = [f"{a} (layer {wanda_core.LAYERS[_layer(a)] if _layer(a) < len(wanda_core.LAYERS) else 'top'}) imports "
          f"{b} (layer {wanda_core.LAYERS[_layer(b)]})"
          for a, deps in GRAPH.items() for b in deps if _layer(b) > _layer(a)]
    assert not up, "imports that go up:\n" + "\n".join(sorted(up))


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(GRAPH[n]):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
            if m not in state:
                visit(m)
        path.pop()
        state[n] = 2

    for n in sorted(GRAPH):
        if n not in state:
            visit(n)


def test_cycle_finder_finds_a_cycle():
    saved = dict(GRAPH)
    try:
        GRAPH["wanda_core.paths"] = GRAPH["wanda_core.paths"] | {"wanda_core.prune.blocks"}
        GRAPH["wanda_core.prune.blocks"] = GRAPH["wanda_core.prune.blocks"] | {"wanda_core.paths"}
        with pytest.raises(AssertionError, match="import cycle"):
            test_no_import_cycle()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


def test_no_module_over_400_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in long.items() if k > MAX_LINES}, {n: k for n, k in long.items() if k > MAX_LINES}

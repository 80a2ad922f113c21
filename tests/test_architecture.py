"""House rules on the source tree, checked from the files themselves (nothing is imported).

- No module under ``src/thingpress_core`` is longer than `MAX_LINES`: split it by job.
- No ``global`` statement in ``src/``: state lives in objects that are passed in.
- No import cycle among thingpress_core modules, counting every import: top level, inside
  functions and under ``TYPE_CHECKING`` (a cycle that only type checkers follow is still one).
- No test patches a thingpress_core module or object (``monkeypatch.setattr``, ``mock.patch``,
  ``setattr``, or assigning to its attributes): tests use the seams the code offers on purpose
  (a parameter, an injected clock, budget or client). Patching third-party code is allowed.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "thingpress_core"
MAX_LINES = 600

# Patches in files this change could not touch, each waiting for its own fix. An entry that no
# longer matches anything fails the test, so the list only shrinks.
PENDING_PATCHES: set[tuple[str, str]] = set()  # (file, patch) pairs waiting for a fix: none


def _python_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# --- (a) module length, (b) global statements --------------------------------------------------


def test_no_module_is_longer_than_the_limit() -> None:
    long = []
    for path in _python_files(SRC / PACKAGE):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long.append(f"{_relative(path)}: {lines} lines")
    assert not long, (
        f"modules over {MAX_LINES} lines; split each by job into modules named for what they hold:\n  "
        + "\n  ".join(long)
    )


def test_no_global_statements() -> None:
    found = [
        f"{_relative(path)}:{node.lineno}: global {', '.join(node.names)}"
        for path in _python_files(SRC)
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Global)
    ]
    assert not found, (
        "'global' statements in src/; keep the state in an object that is passed in:\n  " + "\n  ".join(found)
    )


# --- (c) import cycles -----------------------------------------------------------------------------


def _modules(root: Path) -> dict[str, Path]:
    """Every module under ``root`` by dotted name (a package by its ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in _python_files(root):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules ``name`` imports, wherever the import statement stands.

    ``from package import name`` imports the module ``package.name`` when there is one, and
    the package otherwise; a relative import is resolved against the importing package.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _import_graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_cycles() -> None:
    graph = _import_graph(SRC)
    assert any(name.startswith(f"{PACKAGE}.") for name in graph)  # the walk found the package
    report = []
    for component in _cycles(graph):
        members = set(component)
        edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a] & members)]
        report.append(f"{len(component)} modules import each other:\n" + "\n".join(edges))
    assert not report, (
        "import cycles (every import counts, in functions and under TYPE_CHECKING too); move what "
        "both sides need into a module of its own:\n" + "\n".join(report)
    )


def test_the_cycle_finder_finds_a_cycle_through_any_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n"
    )
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from pkg.a import f\n")
    graph = _import_graph(tmp_path)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert _cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


# --- (d) tests patch no thingpress_core module or object -----------------------------------------


@dataclass(frozen=True)
class Patch:
    path: str
    line: int
    what: str


_PATCH_METHODS = {"setattr", "delattr", "setitem", "delitem"}  # monkeypatch's, and the builtins
_MOCK_PATCHERS = {"object", "multiple", "dict"}  # mock.patch.object(...), patch.multiple(...), ...


def _bound_to_package(tree: ast.Module) -> set[str]:
    """Names the file binds to a thingpress_core module or object, at any level of nesting."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(f"{PACKAGE}."):
                    names.add(alias.asname or alias.name.partition(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and node.module
            and (node.module == PACKAGE or node.module.startswith(f"{PACKAGE}."))
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root_name(node: ast.expr) -> str | None:
    """``x`` for ``x``, ``x.a.b`` or ``x.a[0]``."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _targets_package(node: ast.expr, bound: set[str]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value == PACKAGE or node.value.startswith(f"{PACKAGE}.")
    return _root_name(node) in bound


def _patcher(call: ast.Call) -> str | None:
    """The patching function ``call`` calls, as written, or None when it patches nothing."""
    func = call.func
    if isinstance(func, ast.Name) and func.id in {"setattr", "delattr", "patch"}:
        return func.id
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in _PATCH_METHODS or func.attr == "patch":
        return ast.unparse(func)
    if func.attr in _MOCK_PATCHERS and isinstance(func.value, ast.Attribute | ast.Name):
        inner = func.value.attr if isinstance(func.value, ast.Attribute) else func.value.id
        if inner == "patch":
            return ast.unparse(func)
    return None


def _patches(source: str, where: str) -> Iterator[Patch]:
    """Each place the test file ``where`` (its text ``source``) patches a thingpress_core name."""
    tree = ast.parse(source, filename=where)
    bound = _bound_to_package(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            patcher = _patcher(node)
            target = node.args[0]
            if patcher is not None and _targets_package(target, bound):
                shown = ast.unparse(target)
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    shown += f", {node.args[1].value!r}"
                yield Patch(where, node.lineno, f"{patcher}({shown})")
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if _root_name(target) in bound and not isinstance(target, ast.Name):
                    yield Patch(where, node.lineno, f"del {ast.unparse(target)}")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute | ast.Subscript) and _root_name(target) in bound:
                    yield Patch(where, node.lineno, f"{ast.unparse(target)} =")


def test_no_test_patches_a_thingpress_core_module_or_object() -> None:
    found = [
        patch
        for path in _python_files(ROOT / "tests")
        for patch in _patches(path.read_text(encoding="utf-8"), _relative(path))
    ]
    pending = {(patch.path, patch.what) for patch in found} & PENDING_PATCHES
    offenders = [f"{p.path}:{p.line}: {p.what}" for p in found if (p.path, p.what) not in PENDING_PATCHES]
    assert not offenders, (
        "tests patch thingpress_core modules or objects; pass what the code takes instead (a "
        "parameter, a clock, a budget, a client), or patch the third-party code underneath:\n  "
        + "\n  ".join(offenders)
    )
    stale = sorted(PENDING_PATCHES - pending)
    assert not stale, f"PENDING_PATCHES entries that no longer match anything; remove them: {stale}"


_SAMPLES = {
    "monkeypatch": """
        from thingpress_core.manifests import _pem
        def test(monkeypatch):
            monkeypatch.setattr(_pem, "_CHUNK", 5)
    """,
    "monkeypatch-string": """
        def test(monkeypatch):
            monkeypatch.setattr("thingpress_core.manifests._pem._CHUNK", 5)
    """,
    "patch.object": """
        from unittest import mock
        from thingpress_core.clients import ClientFactory
        def test():
            with mock.patch.object(ClientFactory, "sts"):
                pass
    """,
    "patch-string": """
        from unittest.mock import patch
        def test():
            with patch("thingpress_core.clients.boto3"):
                pass
    """,
    "setattr": """
        import thingpress_core.manifests._pem as pem
        def test():
            setattr(pem, "_CHUNK", 5)
    """,
    "assignment": """
        def test():
            from thingpress_core.manifests import _sevenzip
            _sevenzip.Budget.count = print
    """,
}


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_the_patch_finder_finds_each_way_of_patching(name: str) -> None:
    assert len(list(_patches(textwrap.dedent(_SAMPLES[name]), "tests/sample.py"))) == 1


def test_the_patch_finder_lets_third_party_and_own_objects_be() -> None:
    source = """
        import py7zr
        from unittest import mock
        from thingpress_core.clients import ClientFactory
        def test(monkeypatch, factory):
            monkeypatch.setattr(py7zr.SevenZipFile, "extract", print)
            monkeypatch.setenv("THINGPRESS_REGION", "us-east-1")
            client = ClientFactory().sts()
            with mock.patch.object(client, "get_caller_identity"):
                pass
            factory.region = "eu-west-1"
    """
    assert list(_patches(textwrap.dedent(source), "tests/sample.py")) == []

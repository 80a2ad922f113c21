"""The built documentation site, as readers see it: complete API reference, readable code.

One strict ``mkdocs build`` per module (about 20 s), then checks on the HTML. Skipped when the
docs tools (the ``docs`` dependency group: mkdocs, mkdocstrings, griffe-pydantic) are not
installed, as in the ``tests`` nox session; ``nox -s docs`` builds the same site strictly.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_DOCS_TOOLS = ("mkdocs", "mkdocstrings_handlers.python", "material", "griffe_pydantic")

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name.split(".")[0]) is None for name in _DOCS_TOOLS),
    reason="the docs tools are not installed (pip install --group docs; `nox -s docs` builds the site)",
)

_PRE = re.compile(r"<pre\b([^>]*)>(.*?)</pre>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
MAX_CODE_COLUMNS = 80


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-4000:]
    assert "WARNING" not in output, output[-4000:]
    return out


def _pages(site: Path) -> dict[str, str]:
    return {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8") for p in site.rglob("*.html")}


def _text(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment))


def _section(page: str, anchor: str) -> str:
    """The HTML of one object's documentation: from its heading to the next object at its level."""
    start = page.index(f'id="{anchor}"')
    block = page.rfind('<div class="doc doc-object', 0, start)
    depth, i = 0, block
    for match in re.finditer(r"<div\b|</div>", page[block:]):
        depth += 1 if match.group() == "<div" else -1
        if depth == 0:
            i = block + match.end()
            break
    return page[block:i]


def _long_code_lines(pages: dict[str, str]) -> list[str]:
    found = []
    for name, page in pages.items():
        for attrs, body in _PRE.findall(page):
            if "mermaid" in attrs:  # diagram source: drawn, or summarized in words before it
                continue
            for line in _text(body).splitlines():
                if len(line) > MAX_CODE_COLUMNS:
                    found.append(f"{name}: {len(line)} columns: {line[:60]}...")
    return found


def _readability_problems(pages: dict[str, str]) -> list[str]:
    problems = [f"{name}: doctest: directive" for name, page in pages.items() if "doctest:" in page]
    problems += [f"{name}: ~ role" for name, page in pages.items() if "~thingpress_core." in page]
    return problems + _long_code_lines(pages)


def test_no_doctest_directives_sphinx_roles_or_long_code_lines(site: Path) -> None:
    pages = _pages(site)
    assert len(pages) > 30
    problems = _readability_problems(pages)
    assert problems == []


def test_long_line_check_sees_rendered_code() -> None:
    page = '<pre><code><span class="n">x</span> = "' + "a" * 80 + '"</code></pre><p>' + "b" * 99 + "</p>"
    assert len(_long_code_lines({"p.html": page})) == 1


@pytest.mark.parametrize(
    ("page", "model", "fields"),
    [
        ("reference/importer", "thingpress_core.importer.ImportReport", ["imported", "already_present"]),
        ("reference/importer", "thingpress_core.importer.ImportOutcome", ["status", "certificate_id"]),
        (
            "reference/resilience",
            "thingpress_core.resilience.CircuitBreakerSettings",
            ["failure_threshold", "recovery_timeout"],
        ),
        ("reference/resilience", "thingpress_core.resilience.ResilienceSettings", ["breaker_defaults"]),
        ("reference/resilience", "thingpress_core.resilience.CircuitSnapshot", ["state"]),
        ("reference/core", "thingpress_core.settings.ThingpressSettings", ["region", "total_max_attempts"]),
    ],
)
def test_models_list_their_fields(site: Path, page: str, model: str, fields: list[str]) -> None:
    section = _section((site / page / "index.html").read_text(encoding="utf-8"), model)
    assert "(**values" not in _text(section), "the model shows the generic signature, not its fields"
    for field in fields:
        assert f'id="{model}.{field}"' in section, f"{model} does not list {field}"


def test_field_descriptions_and_defaults_render(site: Path) -> None:
    page = (site / "reference/resilience/index.html").read_text(encoding="utf-8")
    field = _text(_section(page, "thingpress_core.resilience.CircuitBreakerSettings.failure_threshold"))
    assert "Consecutive failures that open the breaker" in field
    assert "= 5" in field
    core_page = (site / "reference/core/index.html").read_text(encoding="utf-8")
    core = _text(_section(core_page, "thingpress_core.settings.ThingpressSettings"))
    assert "region: str | None = None" in " ".join(core.split()).replace(" :", ":")


def test_enum_members_render(site: Path) -> None:
    page = (site / "reference/resilience/index.html").read_text(encoding="utf-8")
    section = _section(page, "thingpress_core.resilience.CircuitState")
    for member in ("CLOSED", "OPEN", "HALF_OPEN"):
        assert f'id="thingpress_core.resilience.CircuitState.{member}"' in section


def _protocol_methods() -> list[str]:
    tree = ast.parse((ROOT / "src/thingpress_core/importer/_protocol.py").read_text(encoding="utf-8"))
    (protocol,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "IoTOperations")
    return [n.name for n in protocol.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


def test_protocol_and_small_classes_list_every_member(site: Path) -> None:
    page = (site / "reference/importer/index.html").read_text(encoding="utf-8")
    methods = _protocol_methods()
    assert len(methods) >= 9
    section = _section(page, "thingpress_core.importer.IoTOperations")
    for method in methods:
        assert f'id="thingpress_core.importer.IoTOperations.{method}"' in section, method
    counts = _section(page, "thingpress_core.importer.CallCounts")
    for member in ("calls", "failures"):
        assert f'id="thingpress_core.importer.CallCounts.{member}"' in counts, member


def test_protocol_methods_have_a_docstring(site: Path) -> None:
    page = (site / "reference/importer/index.html").read_text(encoding="utf-8")
    for method in _protocol_methods():
        member = _section(page, f"thingpress_core.importer.IoTOperations.{method}")
        assert "<p>" in member, f"{method} has no docstring"


def _diagrams_without_summary(pages: dict[str, str]) -> list[str]:
    """Diagrams not preceded by a paragraph "In words: ..." (the renderer loads from a CDN)."""
    missing = []
    for name, page in pages.items():
        for match in re.finditer(r'<pre class="mermaid"', page):
            paragraph = page[: match.start()].rstrip()
            last = paragraph[paragraph.rfind("<p>") :] if paragraph.endswith("</p>") else ""
            if "In words:" not in _text(last):
                missing.append(name)
    return missing


def test_every_diagram_has_a_text_summary_before_it(site: Path) -> None:
    pages = _pages(site)
    assert sum(page.count('<pre class="mermaid"') for page in pages.values()) >= 8
    assert _diagrams_without_summary(pages) == []

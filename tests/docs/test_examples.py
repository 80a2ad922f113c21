"""The code examples in the package's docstrings run, so the API reference stays true.

Every fenced ```` ```python ```` block in any docstring under ``src/thingpress_core`` (module,
class, function or method, private modules included: the public classes live there) is found
by reading the source with `ast`, nothing imported, so a new example is picked up without
touching this file. Each block runs on its own, in a fresh namespace, against the embedded
sandbox (moto's server in this process), with this stage set before it:

- ``THINGPRESS_ENDPOINT_URL``, ``THINGPRESS_REGION`` (us-east-1) and ``THINGPRESS_ACCOUNT_ID``
  point every ``ThingpressSettings()`` / ``IoTService()`` at the sandbox; the sandbox is reset
  and holds the policy ``DevicePolicy``, the thing group ``Fleet`` and the thing type
  ``Sensor``, the resources the examples attach;
- the working directory is a fresh temporary directory holding the files the examples name:
  ``devices.pem`` (3 generated certificates, PEM), ``devices.txt`` (the same 3 as a generated
  manifest), ``vendor-ca.pem`` (their CA), and the Microchip sample manifest
  ``ECC608C-TNGTLSU-B.json`` with its signer ``MCHP_manifest_signer_5.crt``
  (from tests/data).

A block that cannot run here (it needs a real AWS account, a Lambda runtime, ...) is listed in
`COMPILE_ONLY` with the reason; it is still compiled, so at least its syntax stays valid.
Blocks that are not Python (an ASCII diagram, a shell session) are fenced without
``python`` and are not collected.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "thingpress_core"
MICROCHIP = ROOT / "tests" / "data" / "manifests" / "microchip"

# "<module>:<qualified name>:<n>" (n counts the python blocks of that docstring from 0) -> why
# the block is only compiled. Keep it short: an example that can run should run.
COMPILE_ONLY: dict[str, str] = {}

# the closing fence has the opening fence's indentation (an Examples section indents both)
_FENCE = re.compile(r"^([ \t]*)```python[ \t]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One fenced python block of one docstring."""

    key: str  # module:qualname:n
    path: Path
    line: int  # the docstring's first line, for the failure message
    code: str


def _docstrings(tree: ast.Module) -> Iterator[tuple[str, int, str]]:
    """(qualified name, line, docstring) of the module and every class and function in it."""
    module_doc = ast.get_docstring(tree, clean=True)
    if module_doc:
        yield "", 1, module_doc

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                doc = ast.get_docstring(child, clean=True)
                if doc:
                    yield name, child.lineno, doc
                yield from walk(child, f"{name}.")
            elif isinstance(child, (ast.If, ast.Try)):  # definitions under `if TYPE_CHECKING:` etc.
                yield from walk(child, prefix)

    yield from walk(tree, "")


def collect_examples(package: Path = PACKAGE) -> list[Example]:
    """Every fenced python block in the docstrings of the package's modules."""
    found: list[Example] = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for qualname, line, doc in _docstrings(tree):
            for n, match in enumerate(_FENCE.finditer(doc)):
                found.append(Example(f"{module}:{qualname}:{n}", path, line, textwrap.dedent(match.group(2))))
    return found


EXAMPLES = collect_examples()


def test_examples_are_found() -> None:
    """The collector sees the examples (a broken pattern would silently test nothing)."""
    keys = {example.key for example in EXAMPLES}
    assert "thingpress_core.clients:ClientFactory:0" in keys
    assert "thingpress_core.sandbox::0" in keys
    assert len(EXAMPLES) >= 10
    assert set(COMPILE_ONLY) <= keys, f"COMPILE_ONLY names missing examples: {set(COMPILE_ONLY) - keys}"


def test_collector_reads_nested_and_indented_blocks(tmp_path: Path) -> None:
    """A method's indented Examples section is found and dedented; other fences are not."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        textwrap.dedent('''
        class A:
            def f(self):
                """Do f.

                Examples:
                    ```python
                    x = 1
                    ```

                    ```
                    not python
                    ```
                """
        '''),
        encoding="utf-8",
    )
    (example,) = collect_examples(package)
    assert example.key == "pkg.mod:A.f:0"
    assert example.code == "x = 1\n"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[object]:
    pytest.importorskip("moto", reason="the examples run against the sandbox, which needs moto")
    from thingpress_core.sandbox import Sandbox

    with Sandbox() as box:
        yield box


@pytest.fixture
def stage(sandbox: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox reset with the examples' resources, and a directory with their files."""
    from thingpress_core.certificates.generate import (
        generate_ca,
        generate_device_certificates,
        generated_manifest_lines,
    )
    from thingpress_core.sandbox import SANDBOX_ACCOUNT_ID, SANDBOX_REGION, Sandbox

    assert isinstance(sandbox, Sandbox)
    assert sandbox.endpoint_url
    sandbox.reset()
    sandbox.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    monkeypatch.setenv("THINGPRESS_ENDPOINT_URL", sandbox.endpoint_url)
    monkeypatch.setenv("THINGPRESS_REGION", SANDBOX_REGION)
    monkeypatch.setenv("THINGPRESS_ACCOUNT_ID", SANDBOX_ACCOUNT_ID)

    ca = generate_ca()
    certs = list(generate_device_certificates(3, ca=ca))
    (tmp_path / "devices.pem").write_text("".join(cert.pem for cert in certs), encoding="ascii")
    (tmp_path / "devices.txt").write_text("\n".join(generated_manifest_lines(certs)) + "\n", encoding="ascii")
    (tmp_path / "vendor-ca.pem").write_text(ca.cert.pem, encoding="ascii")
    shutil.copyfile(MICROCHIP / "ECC608C-TNGTLSU-B.json", tmp_path / "ECC608C-TNGTLSU-B.json")
    signer = next((MICROCHIP / "verifiers").glob("MCHP_manifest_signer_5_*.crt"))
    shutil.copyfile(signer, tmp_path / "MCHP_manifest_signer_5.crt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.key)
def test_docstring_example(example: Example, request: pytest.FixtureRequest) -> None:
    where = f"{os.path.relpath(example.path, ROOT)}:{example.line}"
    code = compile(example.code, f"<example {example.key} in {where}>", "exec")
    if example.key in COMPILE_ONLY:
        pytest.skip(f"compiled only: {COMPILE_ONLY[example.key]}")
    request.getfixturevalue("stage")
    namespace: dict[str, object] = {"__name__": "__example__"}
    exec(code, namespace)  # our own docstrings, from this repository's source


def test_stage_is_what_the_docstring_says(stage: Path) -> None:
    """The files and settings the module docstring promises are there."""
    names = {path.name for path in stage.iterdir()}
    assert {"devices.pem", "devices.txt", "vendor-ca.pem", "ECC608C-TNGTLSU-B.json"} <= names
    assert os.environ["THINGPRESS_ENDPOINT_URL"].startswith("http://127.0.0.1:")

"""Developer and CI sessions. `nox -t check` is what CI runs (see README)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
# Every supported version is named; a machine without one skips it instead of failing, even
# under CI=true (these machines only have 3.11).
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DEFAULT_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lowest", "lint", "typecheck", "docs", "build"]
nox.options.reuse_venv = "yes"


def _groups(*names: str) -> list[str]:
    requirements: list[str] = []
    for name in names:
        requirements.extend(nox.project.dependency_groups(PYPROJECT, name))
    return requirements


@nox.session(python=PYTHONS, tags=["check"])
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage: `nox -s tests -- -k breaker` passes pytest args."""
    session.install("-e", ".", *_groups("test"))
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"PYTHONHASHSEED": "0", "THINGPRESS_TEST_SUBPROCESS_PYTHON": session.virtualenv.bin + "/python"},
    )


@nox.session(python=DEFAULT_PYTHON, tags=["check"])
def lowest(session: nox.Session) -> None:
    """The test suite at the lowest versions pyproject.toml allows for every direct dependency.

    A version range is a promise: uv's ``--resolution lowest-direct`` installs the lowest
    version each range admits (boto3, cryptography, pydantic, typer, moto, pytest, ...), and
    the whole suite must pass against them.
    """
    session.install("uv>=0.6")
    python = session.virtualenv.bin + "/python"
    session.run(
        "uv",
        "pip",
        "install",
        "--python",
        python,
        "--resolution",
        "lowest-direct",
        "-e",
        ".[cli,sandbox,manifests]",
        "--group",
        "test",
    )
    session.run("uv", "pip", "list", "--python", python)
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"PYTHONHASHSEED": "0", "THINGPRESS_TEST_SUBPROCESS_PYTHON": python},
    )


@nox.session(python=DEFAULT_PYTHON, tags=["check"])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*_groups("lint"))
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(python=DEFAULT_PYTHON, tags=["check"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright on src/ and on the public API in tests/typing/."""
    session.install("-e", ".", *_groups("typing"))
    session.run("mypy", "src/thingpress_core")
    session.run("mypy", "--strict", "tests/typing")
    session.run("pyright", "--pythonpath", session.virtualenv.bin + "/python")
    # every public name fully typed, as users' type checkers see it (the score must stay 100 %)
    session.run("pyright", "--verifytypes", "thingpress_core", "--ignoreexternal")


@nox.session(python=DEFAULT_PYTHON, tags=["check"])
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install("-e", ".", *_groups("docs"))
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(Path(session.create_tmp()) / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session(python=DEFAULT_PYTHON, tags=["check"])
def build(session: nox.Session) -> None:
    """Build sdist and wheel, twine check them, install the wheel in a fresh venv and import it."""
    session.install("build", "twine")
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))
    artifacts = sorted(str(p) for p in dist.iterdir())
    session.run("twine", "check", "--strict", *artifacts)
    wheel = next(p for p in artifacts if p.endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        session.run("python", "-m", "venv", str(venv))
        py = str(venv / "bin" / "python")
        session.run(py, "-m", "pip", "install", "-q", wheel, external=True)
        session.run(
            py,
            "-c",
            "import sys, thingpress_core as t; print('installed thingpress-core', t.__version__);"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported eagerly'",
            external=True,
        )


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Run benchmarks/: one table on stdout, JSON in .bench/results.json (`-- --quick`)."""
    session.install("-e", ".[cli,manifests]", *_groups("bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def demo(session: nox.Session) -> None:
    """The README's main job: import the example manifest into the embedded sandbox."""
    session.install("-e", ".[sandbox]")
    session.run(
        "thingpress-core",
        "import",
        "examples/devices.txt",
        "--sandbox",
        "--policy",
        "DevicePolicy",
        "--thing-group",
        "Fleet",
        "--thing-type",
        "Sensor",
        *session.posargs,
    )


if os.environ.get("NOX_DEBUG_PATHS"):  # pragma: no cover - a debugging aid
    print(ROOT, PYPROJECT["project"]["name"])

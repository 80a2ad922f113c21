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
    """ruff check and ruff format --check; cfn-lint on the SAM template in deploy/."""
    session.install(*_groups("lint"))
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("cfn-lint", "deploy/template.yaml")


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


# The Lambda runtime the template names (deploy/template.yaml: python3.12) and the wheels that
# run on it: Amazon Linux 2023 has glibc 2.34, so manylinux wheels up to 2_34 load.
LAMBDA_PYTHON = "3.12"
LAMBDA_PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"),
}
# ELF e_machine of the compiled extensions each architecture must hold.
LAMBDA_ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}
# Lambda's limits: a zip uploaded directly, and the unzipped code (layers included).
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 262_144_000


@nox.session(python=DEFAULT_PYTHON)
def lambda_package(session: nox.Session) -> None:
    """Build the Lambda deployment zips in dist/lambda/ for x86_64 and arm64 (downloads wheels).

    The project's wheel with its dependencies as manylinux wheels for Lambda's Python 3.12
    (cryptography and pydantic-core are compiled), checked against Lambda's size limits, their
    sizes printed. boto3 is packed too: the runtime's own copy may be older than the range
    pyproject.toml asks for. ``-- --arch x86_64`` chooses the build copied to
    dist/lambda/function.zip, the template's CodeUri (default arm64, the template's default
    Architecture); ``-- --extras manifests`` adds extras (py7zr, for Infineon archives).
    """
    import argparse
    import zipfile

    parser = argparse.ArgumentParser(prog="nox -s lambda_package --")
    parser.add_argument("--arch", choices=sorted(LAMBDA_PLATFORMS), default="arm64")
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. manifests")
    args = parser.parse_args(session.posargs)

    out = ROOT / "dist" / "lambda"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wheels = Path(session.create_tmp()) / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("thingpress_core-*.whl")
    version = wheel.name.split("-")[1]
    requirement = f"{wheel}[{args.extras}]" if args.extras else str(wheel)

    rows = []
    for arch, platforms in LAMBDA_PLATFORMS.items():
        tree = Path(session.create_tmp()) / f"lambda-{arch}"
        shutil.rmtree(tree, ignore_errors=True)
        platform_args = [arg for p in platforms for arg in ("--platform", p)]
        session.run(
            "python", "-m", "pip", "install", "--quiet", "--target", str(tree), "--implementation", "cp",
            "--python-version", LAMBDA_PYTHON, "--only-binary=:all:", *platform_args, requirement,
        )  # fmt: skip
        shutil.rmtree(tree / "bin", ignore_errors=True)  # console scripts: nothing runs them
        for cache in list(tree.rglob("__pycache__")):
            shutil.rmtree(cache, ignore_errors=True)
        _check_machine(session, tree, arch)
        archive = out / f"thingpress-core-{version}-lambda-py{LAMBDA_PYTHON}-{arch}.zip"
        unzipped = 0
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for path in sorted(p for p in tree.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
                unzipped += path.stat().st_size
        zipped = archive.stat().st_size
        rows.append((arch, archive.name, zipped, unzipped))
        if zipped > LAMBDA_ZIP_LIMIT or unzipped > LAMBDA_UNZIPPED_LIMIT:
            session.error(
                f"{archive.name} is over Lambda's limits: {zipped:,} bytes zipped (direct upload limit "
                f"{LAMBDA_ZIP_LIMIT:,}), {unzipped:,} unzipped (limit {LAMBDA_UNZIPPED_LIMIT:,})"
            )
    chosen = next(out / name for arch, name, _, _ in rows if arch == args.arch)
    shutil.copyfile(chosen, out / "function.zip")
    mib = 1024 * 1024
    session.log(f"Lambda packages (Python {LAMBDA_PYTHON}), limits {LAMBDA_ZIP_LIMIT / mib:.0f} MiB zipped, "
                f"{LAMBDA_UNZIPPED_LIMIT / mib:.0f} MiB unzipped:")  # fmt: skip
    for arch, name, zipped, unzipped in rows:
        session.log(f"  {arch:7} {zipped / mib:6.1f} MiB zipped  {unzipped / mib:6.1f} MiB unzipped  {name}")
    session.log(f"dist/lambda/function.zip is the {args.arch} build: deploy with Architecture={args.arch}")


def _check_machine(session: nox.Session, tree: Path, arch: str) -> None:
    """Every compiled extension in ``tree`` is an ELF for ``arch`` (not the build machine's)."""
    found = 0
    for library in tree.rglob("*.so"):
        header = library.read_bytes()[:20]
        if header[:4] != b"\x7fELF":
            session.error(f"{library.relative_to(tree)} is not an ELF shared object")
        if int.from_bytes(header[18:20], "little") != LAMBDA_ELF_MACHINE[arch]:
            session.error(f"{library.relative_to(tree)} is not built for {arch}")
        found += 1
    for needed in ("cryptography/hazmat/bindings", "pydantic_core"):
        if not any(needed in p.as_posix() for p in tree.rglob("*.so")):
            session.error(f"no compiled {needed} in the {arch} package")
    session.log(f"{arch}: {found} compiled extensions, all built for {arch}")


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

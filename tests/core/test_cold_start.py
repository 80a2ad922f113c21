"""`import thingpress_core` must stay light: no boto3, moto, py7zr or CLI libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("boto3", "botocore", "moto", "py7zr", "typer", "rich", "click")


def _modules_after(statement: str) -> set[str]:
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def test_import_package_loads_no_heavy_module() -> None:
    loaded = _modules_after("import thingpress_core")
    assert "thingpress_core" in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    # every public name is loaded on first access: not even pydantic or asyncio yet
    assert not {m for m in loaded if m.split(".")[0] in {"pydantic", "pydantic_settings", "asyncio"}}


def test_every_public_name_resolves_without_boto3() -> None:
    statement = "import thingpress_core as t; [getattr(t, n) for n in t.__all__]"
    loaded = _modules_after(statement)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_version_is_read_from_metadata() -> None:
    from importlib.metadata import version

    import thingpress_core

    assert thingpress_core.__version__ == version("thingpress-core")


def test_the_lambda_module_and_the_subpackages_load_no_heavy_module() -> None:
    # A Lambda cold start imports the handler module; the library's subpackages are what a
    # service imports. boto3 and the rest load on the first AWS call, not before.
    statement = (
        "import thingpress_core.integrations.aws_lambda, thingpress_core.importer, "
        "thingpress_core.manifests, thingpress_core.certificates, thingpress_core.services, "
        "thingpress_core.resilience"
    )
    loaded = _modules_after(statement)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}

"""``thingpress-core example PATH``: write a small sample manifest to try the tool on.

The quickstart needs a manifest, and the one in the repository (``examples/devices.txt``) is
not in the wheel. This command makes a fresh one wherever the tool is installed: device
certificates in the *generated* format (one base64 PEM per line) issued by a new test CA,
and that CA's certificate beside it for ``--trust-ca``. The private keys are never written:
the certificates exist only to be imported into the sandbox or a test account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

from thingpress_core.cli._app import app, console, fail, flag

#: The most certificates one ``example`` writes: enough to watch rate limits, quick to make.
MAX_COUNT: Final = 10_000


def ca_path_for(path: Path) -> Path:
    """Where the CA of the manifest at ``path`` goes: ``devices.txt`` -> ``devices-ca.pem``."""
    return path.with_name(f"{path.stem}-ca.pem")


def _check_target(path: Path, flag_name: str, *, force: bool) -> None:
    if path.is_dir():
        fail(f"{flag_name} {path} is a folder; give a file name")
    if path.exists() and not force:
        fail(f"{path} exists already; choose another name or pass --force to replace it")
    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        fail(f"{flag_name} {path}: the folder {parent} does not exist; create it or choose another path")


@app.command()
def example(
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="The manifest file to write, e.g. devices.txt."),
    ],
    count: Annotated[
        int,
        typer.Option("--count", "-n", metavar="N", help=f"How many certificates (1 to {MAX_COUNT:,})."),
    ] = 25,
    cn_prefix: Annotated[
        str,
        typer.Option("--cn-prefix", metavar="TEXT", help="Common names are TEXT000000, TEXT000001, ..."),
    ] = "sensor-",
    force: Annotated[bool, flag("--force", "Replace PATH and its CA file if they exist.")] = False,
) -> None:
    """Write a sample manifest of generated test certificates, and the CA that issued them.

    The manifest is in the generated format (one base64 PEM per line); the CA goes beside it
    as PATH's name with -ca.pem (devices.txt: devices-ca.pem), for import --trust-ca.
    """
    from thingpress_core.certificates.generate import (
        generate_ca,
        generate_device_certificates,
        generated_manifest_lines,
    )

    if not 1 <= count <= MAX_COUNT:
        fail(f"--count {count} is out of range; give 1 to {MAX_COUNT:,}")
    if not cn_prefix.strip() or len(cn_prefix) > 50:
        fail("--cn-prefix must be 1 to 50 characters and not blank")
    ca_path = ca_path_for(path)
    _check_target(path, "PATH", force=force)
    _check_target(ca_path, "the CA file", force=force)

    ca = generate_ca("thingpress-core example CA")
    certs = generate_device_certificates(count, ca=ca, cn_prefix=cn_prefix)
    lines = "\n".join(generated_manifest_lines(certs)) + "\n"
    try:
        path.write_text(lines, encoding="ascii")
        ca_path.write_text(ca.cert.pem, encoding="ascii")
    except OSError as exc:
        fail(f"{path} cannot be written: {exc.strerror or exc}")
    last = f"{cn_prefix}{count - 1:06d}"
    console.print(
        f"wrote {path}: {count} generated device certificates ({cn_prefix}000000 to {last}), "
        f"issued by {ca_path}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"try: thingpress-core import {path} --sandbox --trust-ca {ca_path} "
        "--policy DevicePolicy --thing-group Fleet --thing-type Sensor",
        highlight=False,
        soft_wrap=True,
    )

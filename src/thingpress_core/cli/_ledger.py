"""The ledger at the command line: ``import --ledger``, and ``ledger init|runs|show|export``."""

from __future__ import annotations

import hashlib
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.table import Table
from rich.text import Text

from thingpress_core.cli._app import (
    EndpointOpt,
    ProfileOpt,
    RegionOpt,
    app,
    check_writable,
    client_factory,
    console,
    err_console,
    fail,
    flag,
    usage_errors,
)

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.ledger import DeviceRecord, Ledger, RunRecord

#: The ledger ``import`` keeps in the working directory unless told otherwise.
DEFAULT_LEDGER: Final = "thingpress-ledger.db"
_DYNAMODB: Final = "dynamodb://"

LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        metavar="PATH|dynamodb://TABLE",
        help=f"Record every device's steps here, and skip what it shows done. Default: {DEFAULT_LEDGER} "
        "in the working directory (with --sandbox: a throw-away one).",
    ),
]
NoLedgerOpt = Annotated[bool, flag("--no-ledger", "Keep no ledger: a re-run checks every device in AWS.")]
RecheckOpt = Annotated[
    bool,
    flag("--recheck", "Ignore the ledger's done marks: check every device in AWS and repair what it lacks."),
]
LedgerArg = Annotated[
    str, typer.Argument(metavar="LEDGER", help="A ledger file, or dynamodb://TABLE.", show_default=False)
]
JsonOpt = Annotated[bool, flag("--json", "JSON instead of a table.")]

ledger_app: typer.Typer = typer.Typer(
    name="ledger",
    help="Read and set up import ledgers: the runs, one device's record, an audit export.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(ledger_app)


# -- the import's ledger -------------------------------------------------------------------------


def import_ledger(
    stack: ExitStack,
    *,
    location: str | None,
    disabled: bool,
    sandbox: bool,
    dry_run: bool,
    factory: ClientFactory | None,
) -> Ledger | None:
    """The ledger ``import`` records into, opened (and closed when ``stack`` closes), or None.

    ``--no-ledger`` and ``--dry-run`` keep none; ``--sandbox`` without ``--ledger`` keeps a
    throw-away one (the sandbox forgets its account too). A file that is not a ledger, or a
    ledger another process holds, is one ``error:`` line and exit 2, and the file is left as
    it was.
    """
    if disabled and location is not None:
        fail("--ledger and --no-ledger exclude each other; give one")
    if disabled or dry_run:
        return None
    if location is None:
        if sandbox:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="thingpress-sandbox-ledger-"))
            location = str(Path(folder) / DEFAULT_LEDGER)
        else:
            location = DEFAULT_LEDGER
    ledger = open_cli_ledger(location, factory=factory, read_only=False)
    stack.callback(ledger.close)
    return ledger


def open_cli_ledger(location: str, *, factory: ClientFactory | None, read_only: bool) -> Ledger:
    """`open_ledger` with its errors as one ``error:`` line naming the ledger."""
    from thingpress_core.ledger import open_ledger

    if not location.startswith(_DYNAMODB):
        if "://" in location:
            fail(f"a ledger is a file path or dynamodb://TABLE, not {location!r}")
        path = Path(location)
        if path.is_dir():
            fail(f"ledger {location} is a folder; give a file name")
        if read_only and not path.exists():
            fail(f"ledger {location} does not exist")
        if not read_only and not path.exists():
            check_writable(path, "--ledger")
    with usage_errors():
        return open_ledger(location, read_only=read_only, factory=factory)


def input_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in bounded chunks: the run record says what it read."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _factory_for(location: str, endpoint_url: str | None, region: str | None, profile: str | None) -> Any:
    if not location.startswith(_DYNAMODB):
        return None
    return client_factory(endpoint_url, region, profile, services=("dynamodb",))


# -- ledger commands -----------------------------------------------------------------------------


@ledger_app.command("init")
def init(
    location: LedgerArg,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Create an empty ledger: a SQLite file, or an on-demand DynamoDB table (dynamodb://TABLE).

    An existing ledger is left as it is; a file that is not one is refused.
    """
    from thingpress_core.ledger import open_ledger

    factory = _factory_for(location, endpoint_url, region, profile)
    if location.startswith(_DYNAMODB):
        from thingpress_core.ledger import DynamoDBLedger

        table = location.removeprefix(_DYNAMODB)
        with usage_errors():
            created = DynamoDBLedger.create_table(table, factory=factory)
        state = "created" if created else "already exists"
        console.print(f"DynamoDB ledger table {table} {state}", highlight=False)
        return
    if "://" in location:
        fail(f"a ledger is a file path or dynamodb://TABLE, not {location!r}")
    existed = Path(location).exists()
    if not existed:
        check_writable(Path(location), "LEDGER")
    with usage_errors():
        open_ledger(location, read_only=False, factory=factory).close()
    console.print(f"ledger {location} {'already exists' if existed else 'created'}", highlight=False)


@ledger_app.command("runs")
def runs(
    location: LedgerArg,
    as_json: JsonOpt = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """List the runs recorded in LEDGER, oldest first: id, kind, status, times, input, counts."""
    ledger = open_cli_ledger(
        location, factory=_factory_for(location, endpoint_url, region, profile), read_only=True
    )
    try:
        with usage_errors():
            found = ledger.runs()
    finally:
        ledger.close()
    if as_json:
        for run in found:
            print(run.model_dump_json())
        return
    table = Table(title=f"runs in {location}")
    for column in ("run", "kind", "status", "started", "ended", "target", "input", "counts"):
        table.add_column(column, overflow="fold")
    for run in found:
        table.add_row(*(Text(cell) for cell in _run_cells(run)))
    console.print(table)
    console.print(f"{len(found)} run(s)")


def _run_cells(run: RunRecord) -> tuple[str, ...]:
    counts = ", ".join(f"{k} {v}" for k, v in run.counts.items() if k != "total")
    return (
        run.run_id,
        run.kind,
        run.status,
        f"{run.started_at:%Y-%m-%d %H:%M:%S}",
        f"{run.ended_at:%Y-%m-%d %H:%M:%S}" if run.ended_at else "-",
        run.target,
        run.input_name or "-",
        counts or "-",
    )


@ledger_app.command("show")
def show(
    location: LedgerArg,
    key: Annotated[
        str,
        typer.Argument(
            metavar="CERT_ID|THING",
            help="A certificate id (or a unique prefix of one) or a thing name.",
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Show what LEDGER records of one device: its thing, source, every step (run, time, made or
    found) and its last error. Exit 1 when nothing matches."""
    ledger = open_cli_ledger(
        location, factory=_factory_for(location, endpoint_url, region, profile), read_only=True
    )
    try:
        with usage_errors():
            found = ledger.find(key)
    finally:
        ledger.close()
    if not found:
        err_console.print(f"no device in {location} matches {key!r}", highlight=False, markup=False)
        raise typer.Exit(1)
    for record in found:
        if as_json:
            print(record.model_dump_json())
        else:
            _print_record(record)


def _print_record(record: DeviceRecord) -> None:
    table = Table(title=f"certificate {record.certificate_id}", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    rows = {
        "target": record.target,
        "thing": record.thing_name,
        "certificate ARN": record.certificate_arn,
        "status": record.certificate_status,
        "thing type": record.thing_type,
        "source": record.source,
        "entry index": None if record.entry_index is None else str(record.entry_index),
        "vendor id": record.vendor_id,
        "first run": record.first_run_id,
        "last run": record.run_id,
        "updated": f"{record.updated_at:%Y-%m-%d %H:%M:%S}",
        "last error": None if record.last_error is None else f"{record.last_error_step}: {record.last_error}",
    }
    for name, value in rows.items():
        table.add_row(name, Text(value or "-"))
    for step, mark in record.steps.items():
        how = "made" if mark.made else "found"
        table.add_row(f"step {step}", Text(f"{how} by run {mark.run_id} at {mark.at:%Y-%m-%d %H:%M:%S}"))
    console.print(table)


@ledger_app.command("export")
def export(
    location: LedgerArg,
    run: Annotated[
        str | None,
        typer.Option("--run", metavar="ID", help="Only the devices this run touched."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="jsonl|csv", help="Output format.")] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="PATH", help="Write here instead of standard output."),
    ] = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Export LEDGER for an audit: one line per device (certificate id, thing name, status,
    steps, run, source), in certificate-id order."""
    from thingpress_core.ledger import export_devices

    if fmt not in ("jsonl", "csv"):
        fail(f"--format must be jsonl or csv, not {fmt!r}")
    check_writable(output, "--output")
    ledger = open_cli_ledger(
        location, factory=_factory_for(location, endpoint_url, region, profile), read_only=True
    )
    try:
        with usage_errors():
            if run is not None and ledger.run(run) is None:
                fail(
                    f"ledger {location} has no run {run!r}; "
                    f"`thingpress-core ledger runs {location}` lists them"
                )
            if output is None:
                count = export_devices(
                    ledger, sys.stdout, format="csv" if fmt == "csv" else "jsonl", run_id=run
                )
            else:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = export_devices(ledger, out, format="csv" if fmt == "csv" else "jsonl", run_id=run)
    finally:
        ledger.close()
    err_console.print(
        f"exported {count} device(s)" + (f" to {output}" if output else ""), highlight=False, markup=False
    )


__all__ = ["DEFAULT_LEDGER", "import_ledger", "input_digest", "ledger_app"]

"""What the command prints: the progress bar, the summary and failure tables, the notes."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from thingpress_core.cli._app import console, err_console

if TYPE_CHECKING:
    from thingpress_core.errors import ManifestError
    from thingpress_core.importer import CertificateImporter, ImportOutcome, ImportReport
    from thingpress_core.manifests import ManifestEntry, ManifestReader

__all__ = ["manifest_section", "print_manifest_notes", "print_sandbox", "print_summary", "run_import"]

_SHOWN_FAILURES = 50
_NOTHING_TO_IMPORT = ("no_certificate", "not_a_certificate")


def run_import(
    importer: CertificateImporter,
    entries: Iterable[ManifestEntry | ManifestError],
    total: int,
    *,
    input_name: str | None = None,
    input_digest: str | None = None,
) -> ImportReport:
    """``import_all`` with a live progress bar: count, rate, elapsed, ETA, failures."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from thingpress_core.errors import ThingpressError
    from thingpress_core.importer import ImportInterrupted, OutcomeStatus

    failures = 0
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("[red]{task.fields[failures]} failed"),
        console=err_console,
        transient=False,
    ) as progress:
        task = progress.add_task("import", total=total, failures=0, rate=0.0)

        def on_outcome(outcome: ImportOutcome) -> None:
            nonlocal failures
            if outcome.status == OutcomeStatus.FAILED:
                failures += 1
            elapsed = max(time.monotonic() - started, 1e-6)
            done = progress.tasks[0].completed + 1
            progress.update(task, advance=1, failures=failures, rate=done / elapsed)

        try:
            return importer.import_all(
                entries, progress=on_outcome, input_name=input_name, input_digest=input_digest
            )
        except (ThingpressError, KeyboardInterrupt) as exc:
            if not isinstance(exc, ImportInterrupted):
                # a pre-flight or setup error, or Ctrl-C before the first certificate, ends the
                # command with its one line: the bar of a run that never began goes with it
                progress.live.transient = True
            raise


def print_summary(result: ImportReport, *, source: str, fmt: str, options: dict[str, Any]) -> None:
    """The summary table (counts, rate, calls per operation, the manifest read) and failures."""
    table = Table(title="import summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("manifest", Text(f"{source} ({fmt})"))
    shown = ", ".join(f"{k}={v}" for k, v in options.items())
    table.add_row("reader options", Text(shown or "-"))
    ledger = f"{result.ledger} (run {result.run_id})" if result.ledger else "none"
    table.add_row("ledger", Text(ledger))
    table.add_row("total", str(result.total))
    table.add_row("imported", f"[green]{result.imported}")
    table.add_row("already present", str(result.already_present))
    table.add_row("failed", f"[red]{result.failed}" if result.failed else "0")
    table.add_row("skipped", str(result.skipped))
    if result.interrupted:
        table.add_row("unfinished", f"[yellow]{len(result.unfinished)}")
    table.add_row("duration", f"{result.duration_seconds:.1f} s")
    table.add_row("rate", f"{result.rate_per_second:.1f} certificates/s")
    for name, count in sorted(result.calls.items()):
        table.add_row(f"calls {name}", str(count))
    console.print(table)
    if not result.failures:
        return
    failed = Table(title=f"failures ({len(result.failures)})")
    for column in ("index", "certificate id", "thing name", "step", "reason", "error"):
        failed.add_column(column, overflow="fold")
    for outcome in result.failures[:_SHOWN_FAILURES]:
        failed.add_row(
            *(
                Text(cell)  # data, never markup: an error may hold "[...]"
                for cell in (
                    "-" if outcome.index is None else str(outcome.index),
                    outcome.certificate_id or "-",
                    outcome.thing_name or "-",
                    outcome.failed_step or "-",
                    outcome.reason or "-",
                    outcome.error or "",
                )
            )
        )
    console.print(failed)
    if len(result.failures) > _SHOWN_FAILURES:
        console.print(f"... and {len(result.failures) - _SHOWN_FAILURES} more; see --report")


def manifest_section(
    reader: ManifestReader[ManifestEntry | ManifestError], options: dict[str, Any]
) -> dict[str, Any]:
    """What the --report JSON says of the manifest: its format and reader options, how many
    entries and certificates it held, and every entry that held nothing to import."""
    report = reader.report
    nothing = [s for s in report.skipped if s.code in _NOTHING_TO_IMPORT]
    notes = [_note(nothing)] if nothing else []
    return {
        "source": report.source,
        "format": report.format.value,
        "reader_options": options,
        "entries": report.entries,
        "certificates": report.yielded,
        "complete": report.complete,
        "skipped": [
            {"index": s.index, "code": s.code, "reason": s.reason, "vendor_id": s.vendor_id} for s in nothing
        ],
        "notes": notes,
    }


def _note(nothing: list[Any]) -> str:
    first = nothing[0]
    count = len(nothing)
    noun = "entry holds" if count == 1 else "entries hold"
    return f"{count} {noun} no certificate to import (e.g. index {first.index}: {first.reason})"


def print_manifest_notes(reader: ManifestReader[ManifestEntry | ManifestError]) -> None:
    """Entries that held nothing to import: not failures, but worth a line."""
    nothing = [s for s in reader.report.skipped if s.code in _NOTHING_TO_IMPORT]
    if nothing:
        err_console.print(f"note: {_note(nothing)}", highlight=False, markup=False)


def print_sandbox(box: Any) -> None:
    """What the sandbox holds now: the first things with their certificates and wiring."""
    counts = box.counts()
    things = box.things(limit=10)
    table = Table(
        title=f"sandbox now holds {counts['things']} things and {counts['certificates']} certificates"
    )
    for column in ("thing", "type", "certificate", "policies", "groups"):
        table.add_column(column, overflow="fold")
    for thing in things:
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    thing.name,
                    thing.thing_type or "-",
                    ", ".join(c[:16] + "..." for c in thing.certificate_ids) or "-",
                    ", ".join(thing.policies) or "-",
                    ", ".join(thing.thing_groups) or "-",
                )
            )
        )
    console.print(table)
    if counts["things"] > len(things):
        console.print(f"(first {len(things)} of {counts['things']} things shown)")

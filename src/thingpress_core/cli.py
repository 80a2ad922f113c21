"""The ``thingpress-core`` command: inspect a manifest, import it, or enqueue it for Lambda.

Needs the ``cli`` extra (typer and rich); ``--sandbox`` also needs the ``sandbox`` extra.
Exit codes: 0 every certificate imported or already present, 1 some failed, 2 a usage or
pre-flight error (missing policy, unreadable file, bad option), 130 interrupted (Ctrl-C; the
``--report`` then holds what finished and what did not).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

try:
    import typer
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise SystemExit(
        "the thingpress-core command needs its extra: pip install 'thingpress-core[cli]'"
    ) from exc

from thingpress_core.errors import ConfigurationError, ManifestError, PreflightError, ThingpressError

if TYPE_CHECKING:
    from thingpress_core._vocabulary import ThingNamingChoice
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import ImportOutcome, ImportReport
    from thingpress_core.manifests import ManifestEntry, ManifestReader

__all__ = ["app", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="thingpress-core",
    help="Bulk-import X.509 device certificates into AWS IoT Core.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

FileArg = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True, help="The manifest or certificate file."),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="auto, pem, generated, espressif, microchip or infineon.",
        show_default=True,
    ),
]
VerifierOpt = Annotated[
    list[Path] | None,
    typer.Option("--verifier", help="Microchip manifest signer certificate (repeatable).", exists=True),
]
CertTypeOpt = Annotated[
    str | None,
    typer.Option("--cert-type", help="Infineon certificate slot: E0E0 (the reader's default), E0E1 or E0E2."),
]
NamingOpt = Annotated[
    str | None,
    typer.Option(
        "--naming",
        "--thing-name",
        metavar="common_name|certificate_id",
        help="Name things by common_name or certificate_id, whatever the manifest offers. "
        "Default: the manifest's name (MAC, uniqueId), else the common name.",
    ),
]


PolicyOpt = Annotated[list[str] | None, typer.Option("--policy", help="IoT policy to attach (repeatable).")]
ThingGroupOpt = Annotated[
    list[str] | None, typer.Option("--thing-group", help="Thing group to add each thing to (repeatable).")
]
ThingTypeOpt = Annotated[str | None, typer.Option("--thing-type", help="Thing type of each thing.")]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint-url", help="Send AWS calls here.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region.")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile.")]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _open_manifest(
    path: Path,
    fmt: str,
    verifiers: list[Path] | None,
    cert_type: str | None,
    on_bad_entry: str = "refuse",
) -> ManifestReader[ManifestEntry | ManifestError]:
    """The reader for FILE: bad entries come in place as `ManifestError` items (the importer
    reports each as a failed certificate at step ``parse``, so the counts add up), or, to
    refuse the file, the first one raises."""
    from thingpress_core.manifests import ManifestFormat, read_manifest

    chosen = None if fmt == "auto" else fmt
    options: dict[str, Any] = {"format": chosen, "cert_type": cert_type}
    if verifiers:
        options["verifiers"] = list(verifiers)
    if on_bad_entry == "refuse":
        return read_manifest(path, on_error="raise", **options)
    reader = read_manifest(path, on_error="yield", **options)
    if on_bad_entry == "auto" and reader.format is ManifestFormat.MICROCHIP:
        # A signed manifest with one bad signature is refused whole: the file itself is suspect.
        # In an unsigned file a corrupt row is that row's problem; the others go ahead.
        reader.close()
        return read_manifest(path, on_error="raise", **options)
    return reader


def _print_skipped(reader: ManifestReader[ManifestEntry | ManifestError]) -> None:
    empty = [s for s in reader.report.skipped if s.code == "no_certificate"]
    if empty:
        err_console.print(
            f"note: {len(empty)} verified entr{'y' if len(empty) == 1 else 'ies'} carry no certificate "
            f"(e.g. entry {empty[0].number}: {empty[0].reason})",
            highlight=False,
        )


_NAMINGS: dict[str, ThingNamingChoice] = {"common_name": "common_name", "certificate_id": "certificate_id"}
_OLD_NAMINGS: dict[str, ThingNamingChoice] = {
    "common-name": "common_name",
    "certificate-id": "certificate_id",
}


def _naming(value: str | None) -> ThingNamingChoice | None:
    """The --naming value, in the one spelling the library uses (0.1.0's dashed one still works)."""
    if value is None:
        return None
    if value in _NAMINGS:
        return _NAMINGS[value]
    if value in _OLD_NAMINGS:
        err_console.print(
            f"note: --naming {value} is spelt {_OLD_NAMINGS[value]} now", highlight=False, style="yellow"
        )
        return _OLD_NAMINGS[value]
    raise _fail(f"--naming must be common_name or certificate_id, not {value!r}")


@app.command()
def inspect(
    file: FileArg,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    naming: NamingOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per certificate.")] = False,
) -> None:
    """Show the certificates of FILE: id, common name, thing name, issuer, expiry, validity.

    The thing name is the one `import` would use (the same mapping, the same --thing-name);
    the validity column marks certificates that are expired or not yet valid, which `import`
    refuses unless --allow-expired.
    """
    from datetime import datetime, timezone

    from thingpress_core.certificates import thing_name_for

    chosen = _naming(naming)
    now = datetime.now(timezone.utc)
    table = Table(title=f"{file.name}", show_lines=False)
    for column in ("#", "certificate id", "common name", "thing name", "issuer", "expires"):
        table.add_column(column, overflow="fold")
    count = invalid = 0
    try:
        reader = _open_manifest(file, fmt, verifier, cert_type)
        for entry in reader:
            if isinstance(entry, ManifestError):  # not in "refuse" mode: the first one raises
                raise entry
            cert = entry.certificate
            name = thing_name_for(cert, naming=chosen, offered=entry.thing_name)
            validity = _validity(cert.not_before, cert.not_after, now)
            invalid += validity != "valid"
            count += 1
            row = {
                "index": entry.index,
                "certificate_id": cert.certificate_id,
                "common_name": cert.common_name,
                "thing_name": name,
                "issuer": cert.issuer,
                "not_before": cert.not_before.isoformat(),
                "not_after": cert.not_after.isoformat(),
                "validity": validity,
                "vendor_id": entry.vendor_id,
            }
            if as_json:
                console.print_json(json.dumps(row)) if console.is_terminal else print(json.dumps(row))
            else:
                table.add_row(
                    str(entry.index + 1),
                    cert.certificate_id,
                    cert.common_name or "-",
                    name,
                    cert.issuer,
                    cert.not_after.date().isoformat()
                    + ("" if validity == "valid" else f" [red]({validity})[/]"),
                )
    except ThingpressError as exc:
        raise _fail(str(exc)) from None
    if not as_json:
        console.print(table)
        console.print(f"{count} certificate(s)")
    if invalid:
        err_console.print(
            f"warning: {invalid} certificate(s) expired or not yet valid; import refuses them "
            "unless --allow-expired",
            highlight=False,
        )
    _print_skipped(reader)


def _validity(not_before: Any, not_after: Any, now: Any) -> str:
    if now < not_before:
        return "not yet valid"
    if now > not_after:
        return "expired"
    return "valid"


def _factory(
    endpoint_url: str | None, region: str | None, profile: str | None, **extra: Any
) -> ClientFactory:
    """A factory from the environment's settings, with the command line's choices on top."""
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    given: dict[str, Any] = {"endpoint_url": endpoint_url, "region": region, "profile": profile}
    try:
        return ClientFactory(ThingpressSettings(**{k: v for k, v in given.items() if v}, **extra))
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None


def _configure_logging(verbose: int) -> None:
    """Our loggers at -v (INFO) and -vv (DEBUG); botocore and urllib3 stay at WARNING.

    Their DEBUG output is the wire: request bodies with certificate PEMs, signed headers with
    the session token and access key id. No verbosity turns it on, and the handler carries
    the redacting filter as a second guard for anything else.
    """
    from thingpress_core.logging import install_redaction

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("thingpress_core").setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_redaction()


@app.command("import")
def import_(
    file: FileArg,
    policy: PolicyOpt = None,
    thing_group: ThingGroupOpt = None,
    thing_type: ThingTypeOpt = None,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    naming: NamingOpt = None,
    trust_ca: Annotated[
        Path | None,
        typer.Option(
            "--trust-ca", exists=True, help="CA certificate file or folder; untrusted certificates fail."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=128, help="Worker threads.")] = 8,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read, verify and name everything and run the pre-flight check; register nothing.",
        ),
    ] = False,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against an embedded AWS stand-in (no account needed).")
    ] = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    on_bad_entry: Annotated[
        str,
        typer.Option(
            "--on-bad-entry",
            help="auto: refuse a signed manifest with any bad entry, report other bad entries as failed; "
            "fail: report every bad entry as failed; refuse: refuse the whole file.",
        ),
    ] = "auto",
    allow_expired: Annotated[
        bool,
        typer.Option("--allow-expired", help="Import certificates outside their validity period too."),
    ] = False,
    allow_multiple_things: Annotated[
        bool,
        typer.Option(
            "--allow-multiple-things",
            help="Attach a certificate that is already on another thing to this one as well.",
        ),
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output.")] = 0,
) -> None:
    """Import every certificate of FILE into AWS IoT Core: certificate, thing, policies, groups, type."""
    from thingpress_core.certificates import TrustStore
    from thingpress_core.importer import CertificateImporter, ImportInterrupted, ImportOptions
    from thingpress_core.services import IoTService

    _configure_logging(verbose)
    if sandbox and endpoint_url:
        raise _fail("--sandbox and --endpoint-url exclude each other")
    if on_bad_entry not in {"auto", "fail", "refuse"}:
        raise _fail(f"--on-bad-entry must be auto, fail or refuse, not {on_bad_entry!r}")
    try:
        options = ImportOptions(
            policies=tuple(policy or ()),
            thing_groups=tuple(thing_group or ()),
            thing_type=thing_type,
            naming=_naming(naming),
            concurrency=concurrency,
            trust_store=TrustStore.from_path(trust_ca) if trust_ca else None,
            dry_run=dry_run,
            allow_expired=allow_expired,
            allow_multiple_things=allow_multiple_things,
        )
    except ThingpressError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(f"invalid option: {exc}") from None

    # Count first so the progress bar can show an ETA; a bad file stops here with exit 2.
    try:
        total = sum(1 for _ in _open_manifest(file, fmt, verifier, cert_type, on_bad_entry))
    except ThingpressError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("interrupted before the import began: nothing was sent", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None

    box: Any = None
    with ExitStack() as stack:
        if sandbox:
            from thingpress_core.sandbox import Sandbox

            box = stack.enter_context(Sandbox())
            box.create_resources(
                policies=options.policies, thing_groups=options.thing_groups, thing_type=thing_type
            )
            factory = box.factory
            err_console.print(
                f"sandbox: AWS stand-in running at {box.endpoint_url} (nothing leaves this machine)"
            )
        else:
            factory = _factory(endpoint_url, region, profile, max_pool_connections=max(32, concurrency * 2))

        importer = CertificateImporter(IoTService(factory), options=options)
        interrupted = False
        reader = _open_manifest(file, fmt, verifier, cert_type, on_bad_entry)
        try:
            result = _run_import(importer, reader, total)
        except PreflightError as exc:
            raise _fail(f"pre-flight check failed: {exc}") from None
        except ThingpressError as exc:
            raise _fail(str(exc)) from None
        except ImportInterrupted as stopped:
            interrupted = True
            result = stopped.report

        _print_summary(result)
        if not interrupted:
            _print_skipped(reader)
        if report:
            report.write_text(result.model_dump_json(indent=2))
            err_console.print(f"report written to {report}")
        if interrupted:
            err_console.print(
                f"interrupted: {result.total} finished, {len(result.unfinished)} unfinished "
                "(run the same import again to finish: done devices cost nothing but their check)",
                highlight=False,
            )
            raise typer.Exit(EXIT_INTERRUPTED)
        if box is not None:
            _print_sandbox(box)

    failed = result.failed
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _run_import(importer: Any, entries: Iterator[ManifestEntry | ManifestError], total: int) -> ImportReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from thingpress_core.importer import OutcomeStatus

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

        result: ImportReport = importer.import_all(entries, progress=on_outcome)
    return result


def _print_summary(result: ImportReport) -> None:
    table = Table(title="import summary", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
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
    if result.failures:
        failed = Table(title=f"failures ({len(result.failures)})")
        for column in ("certificate id", "thing name", "step", "reason", "error"):
            failed.add_column(column, overflow="fold")
        for outcome in result.failures[:50]:
            failed.add_row(
                outcome.certificate_id or "-",
                outcome.thing_name or "-",
                outcome.failed_step or "-",
                outcome.reason or "-",
                outcome.error or "",
            )
        console.print(failed)
        if len(result.failures) > 50:
            console.print(f"... and {len(result.failures) - 50} more; see --report")


def _print_sandbox(box: Any) -> None:
    counts = box.counts()
    things = box.things(limit=10)
    table = Table(
        title=f"sandbox now holds {counts['things']} things and {counts['certificates']} certificates"
    )
    for column in ("thing", "type", "certificate", "policies", "groups"):
        table.add_column(column, overflow="fold")
    for thing in things:
        table.add_row(
            thing.name,
            thing.thing_type or "-",
            ", ".join(c[:16] + "..." for c in thing.certificate_ids) or "-",
            ", ".join(thing.policies) or "-",
            ", ".join(thing.thing_groups) or "-",
        )
    console.print(table)
    if counts["things"] > len(things):
        console.print(f"(first {len(things)} of {counts['things']} things shown)")


@app.command()
def enqueue(
    file: FileArg,
    queue_url: Annotated[str, typer.Option("--queue-url", help="The SQS queue the import Lambda reads.")],
    policy: PolicyOpt = None,
    thing_group: ThingGroupOpt = None,
    thing_type: ThingTypeOpt = None,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    per_message: Annotated[
        int, typer.Option("--per-message", min=1, help="Certificates per SQS message.")
    ] = 1,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Send every certificate of FILE to an SQS queue for the import Lambda (see the deployment guide)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from thingpress_core.importer import ImportOptions
    from thingpress_core.integrations.aws_lambda import enqueue_manifest
    from thingpress_core.services import SQSService

    try:
        options = ImportOptions(
            policies=tuple(policy or ()), thing_groups=tuple(thing_group or ()), thing_type=thing_type
        )
        total = sum(1 for _ in _open_manifest(file, fmt, verifier, cert_type))
        sqs = SQSService(_factory(endpoint_url, region, profile))
    except ThingpressError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(f"invalid option: {exc}") from None
    with Progress(
        TextColumn("[bold]enqueueing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("enqueue", total=total)
        try:
            result = enqueue_manifest(
                _open_manifest(file, fmt, verifier, cert_type),
                queue_url,
                options=options,
                sqs=sqs,
                per_message=per_message,
                progress=lambda p: progress.update(task, completed=p.total),
            )
        except ThingpressError as exc:
            raise _fail(str(exc)) from None
    console.print(f"sent {result.sent} of {result.total} certificate(s); {len(result.failed)} failed")
    for failure in result.failed[:50]:
        console.print(f"  entry {failure.index + 1}: {failure.reason}", highlight=False)
    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)


@app.command()
def version() -> None:
    """Print the installed version."""
    from thingpress_core._version import version as _version

    console.print(f"thingpress-core {_version()}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The fleet operations at the command line: ``verify``, ``activate``, ``deactivate``, ``rollback``.

Each takes its devices from a manifest FILE or from a ledger (``--ledger L [--run ID]``), works
at the quota with a progress bar, prints a summary and writes ``--report`` JSON, like ``import``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from thingpress_core.cli._app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CertTypeOpt,
    EndpointOpt,
    FormatOpt,
    NamingOpt,
    ProfileOpt,
    RegionOpt,
    ReportOpt,
    ThingNamePrefixOpt,
    VerboseOpt,
    VerifierOpt,
    app,
    check_writable,
    client_factory,
    configure_logging,
    console,
    err_console,
    fail,
    flag,
    open_manifest,
    parse_naming,
    parse_prefix,
    regular_file,
    usage_errors,
)
from thingpress_core.cli._ledger import DEFAULT_LEDGER, open_cli_ledger

if TYPE_CHECKING:
    from thingpress_core.ledger import Ledger, RunRecord
    from thingpress_core.operations import DeviceInput, OperationReport, RollbackPlan
    from thingpress_core.services import IoTService

_R = TypeVar("_R")

OptionalFileArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="FILE",
        callback=regular_file,
        help="The manifest of the devices; without it, the devices of --ledger.",
        show_default=False,
    ),
]
# verify reads what each device has: its options say what to expect, not what to attach
ExpectPolicyOpt = Annotated[
    list[str] | None,
    typer.Option("--policy", metavar="NAME", help="IoT policy each certificate must have (repeatable)."),
]
ExpectGroupOpt = Annotated[
    list[str] | None,
    typer.Option("--thing-group", metavar="NAME", help="Thing group each thing must be in (repeatable)."),
]
ExpectTypeOpt = Annotated[
    str | None, typer.Option("--thing-type", metavar="NAME", help="Thing type each thing must have.")
]
OpsLedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        metavar="PATH|dynamodb://TABLE",
        help=f"The import ledger. Default: {DEFAULT_LEDGER} in the working directory, when it exists.",
    ),
]
RunOpt = Annotated[
    str | None, typer.Option("--run", metavar="ID", help="Only the devices this ledger run touched.")
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, max=128, metavar="N", help="Worker threads.")
]
NoLedgerOpt = Annotated[bool, flag("--no-ledger", "Neither read nor record a ledger.")]
StatusOpt = Annotated[
    str | None,
    typer.Option("--status", metavar="ACTIVE|INACTIVE", help="The certificate status each device must have."),
]

_SHOWN = 50


# -- where the devices come from ---------------------------------------------------------------


class _Source:
    """The devices of one command: a manifest's entries, or a ledger's records."""

    def __init__(
        self,
        stack: ExitStack,
        *,
        file: Path | None,
        location: str | None,
        no_ledger: bool,
        run_id: str | None,
        factory: Any,
        need_ledger: bool = False,
    ) -> None:
        if no_ledger and location is not None:
            fail("--ledger and --no-ledger exclude each other; give one")
        if file is None and no_ledger:
            fail("give a manifest FILE, or a ledger (--ledger) to take the devices from")
        if location is None and not no_ledger and Path(DEFAULT_LEDGER).is_file():
            location = DEFAULT_LEDGER
            err_console.print(f"ledger: {DEFAULT_LEDGER} (the working directory's)", highlight=False)
        if location is None and (file is None or need_ledger):
            fail(
                f"no ledger: give --ledger PATH|dynamodb://TABLE (no {DEFAULT_LEDGER} in the working "
                "directory)" + ("" if need_ledger else ", or a manifest FILE")
            )
        if run_id is not None and location is None:
            fail("--run needs a ledger (--ledger)")
        self.file = file
        self.run_id = run_id
        self.ledger: Ledger | None = None
        if location is not None:
            self.ledger = open_cli_ledger(location, factory=factory, read_only=False)
            stack.callback(self.ledger.close)
        self.run: RunRecord | None = None
        if run_id is not None:
            assert self.ledger is not None
            with usage_errors():
                self.run = self.ledger.run(run_id)
            if self.run is None:
                fail(
                    f"ledger {location} has no run {run_id!r}; "
                    f"`thingpress-core ledger runs {location}` lists them"
                )

    def last_import(self, target: str) -> RunRecord | None:
        """The run whose options describe the devices: ``--run``, else the ledger's last import."""
        from thingpress_core.operations import last_run

        if self.run is not None or self.ledger is None:
            return self.run
        with usage_errors():
            return last_run(self.ledger, target)

    def devices(
        self, target: str, fmt: str, verifier: list[Path] | None, cert_type: str | None
    ) -> tuple[Iterable[DeviceInput], int]:
        """The devices, lazily, and how many there are (for the progress bar)."""
        from thingpress_core.operations import ledger_devices

        if self.file is not None:
            with usage_errors():
                total = sum(1 for _ in open_manifest(self.file, fmt, verifier, cert_type, "fail"))
                reader = open_manifest(self.file, fmt, verifier, cert_type, "fail")
            return reader, total
        assert self.ledger is not None
        ledger = self.ledger
        with usage_errors():
            total = sum(1 for _ in ledger.devices(target=target, run_id=self.run_id))
        if total == 0:
            where = f"run {self.run_id}" if self.run_id else "this account and region"
            err_console.print(f"note: the ledger holds no device of {where} ({target})", highlight=False)
        return ledger_devices(ledger, target=target, run_id=self.run_id), total


def _service(
    endpoint_url: str | None, region: str | None, profile: str | None, concurrency: int
) -> IoTService:
    from thingpress_core.services import IoTService

    factory = client_factory(endpoint_url, region, profile, max_pool_connections=max(32, concurrency * 2))
    return IoTService(factory)


def _target(iot: IoTService) -> str:
    from thingpress_core.ledger import Target

    factory = iot.factory
    with usage_errors():
        return Target(
            account_id=factory.account_id(), region=factory.region, endpoint=factory.settings.endpoint_url
        ).key


def _with_progress(label: str, total: int, work: Callable[[Callable[[object], object]], _R]) -> _R:
    """Run ``work(progress)`` under a progress bar that advances once per device."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        console=err_console,
    ) as bar:
        task = bar.add_task(label, total=total, failed=0)
        failed = 0

        def advance(outcome: object) -> None:
            nonlocal failed
            failed += getattr(outcome, "status", None) == "failed"
            bar.update(task, advance=1, failed=failed)

        return work(advance)


def _finish(report: OperationReport[Any], path: Path | None, extra: dict[str, Any] | None = None) -> None:
    """The summary line, the failures, the JSON report."""
    console.print(report.summary(), highlight=False, markup=False)
    if report.ledger:
        console.print(f"ledger: {report.ledger} (run {report.run_id})", highlight=False, markup=False)
    if report.failures:
        table = Table(title=f"failures ({len(report.failures)})")
        for column in ("certificate id", "thing", "step", "reason", "error"):
            table.add_column(column, overflow="fold")
        for outcome in report.failures[:_SHOWN]:
            table.add_row(
                *(
                    Text(cell or "-")
                    for cell in (
                        outcome.certificate_id,
                        outcome.thing_name,
                        outcome.failed_step,
                        outcome.reason,
                        outcome.error,
                    )
                )
            )
        console.print(table)
        if len(report.failures) > _SHOWN:
            console.print(f"... and {len(report.failures) - _SHOWN} more; see --report")
    if path is not None:
        data = report.model_dump(mode="json")
        data.update(extra or {})
        path.write_text(json.dumps(data, indent=2))
        err_console.print(f"report written to {path}", highlight=False)


def _interrupted(exc: BaseException, path: Path | None) -> typer.Exit:
    report = getattr(exc, "report", None)
    if report is not None:
        _finish(report, path)
        err_console.print(
            f"interrupted: {len(report.unfinished)} unfinished (run the same command again to finish)",
            highlight=False,
        )
    return typer.Exit(EXIT_INTERRUPTED)


def _status_choice(value: str | None) -> Any:
    if value is None:
        return None
    upper = value.upper()
    if upper not in ("ACTIVE", "INACTIVE"):
        fail(f"--status must be ACTIVE or INACTIVE, not {value!r}")
    return upper


# -- verify ------------------------------------------------------------------------------------


@app.command()
def verify(
    file: OptionalFileArg = None,
    ledger: OpsLedgerOpt = None,
    run: RunOpt = None,
    policy: ExpectPolicyOpt = None,
    thing_group: ExpectGroupOpt = None,
    thing_type: ExpectTypeOpt = None,
    status: StatusOpt = None,
    naming: NamingOpt = None,
    thing_name_prefix: ThingNamePrefixOpt = None,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    repair: Annotated[
        bool, flag("--repair", "Make the missing steps (the importer's own); needs the manifest FILE.")
    ] = False,
    concurrency: ConcurrencyOpt = 8,
    report: ReportOpt = None,
    no_ledger: NoLedgerOpt = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Check that AWS still holds every device as imported, and report the drift per device.

    Devices come from FILE (named as import names them: give the same --naming and
    --thing-name-prefix) or from the ledger (--ledger, --run).
    What each device must have comes from --policy, --thing-group, --thing-type and --status;
    with a ledger and none of them, from the options of the run (--run, else the last import).
    3 to 5 read calls per device; DescribeCertificate and ListPrincipalThings (10/s each) bind.

    Exit codes: 0 no drift, 1 drift or a device that could not be checked, 2 usage, 130
    interrupted.
    """
    from thingpress_core.operations import ExpectedState, OperationInterrupted, verify_devices

    configure_logging(verbose)
    check_writable(report, "--report")
    if repair and file is None:
        fail("--repair needs the manifest FILE: the ledger holds no certificate bodies to register")
    chosen_status = _status_choice(status)
    iot = _service(endpoint_url, region, profile, concurrency)
    with ExitStack() as stack:
        source = _Source(
            stack, file=file, location=ledger, no_ledger=no_ledger, run_id=run, factory=iot.factory
        )
        target = _target(iot)
        given = bool(policy or thing_group or thing_type or chosen_status or naming or thing_name_prefix)
        base = source.last_import(target) if (source.ledger is not None and not given) else None
        with usage_errors():
            if base is not None:
                expected = ExpectedState.from_run(base)
                err_console.print(f"expected: the options of run {base.run_id}", highlight=False)
            else:
                expected = ExpectedState(
                    policies=tuple(policy or ()),
                    thing_groups=tuple(thing_group or ()),
                    thing_type=thing_type,
                    status=chosen_status,
                    naming=parse_naming(naming),
                    thing_name_prefix=parse_prefix(thing_name_prefix),
                )
        devices, total = source.devices(target, fmt, verifier, cert_type)
        try:
            with usage_errors():
                result = _with_progress(
                    "verifying",
                    total,
                    lambda progress: verify_devices(
                        iot,
                        devices,
                        expected=expected,
                        repair=repair,
                        concurrency=concurrency,
                        progress=progress,
                        ledger=source.ledger,
                        target=target,
                    ),
                )
        except OperationInterrupted as stopped:
            raise _interrupted(stopped, report) from None
        _print_drift(result.drifted_devices)
        _finish(result, report, {"checked": result.total})
    raise typer.Exit(EXIT_FAILED if result.drifted or result.failed else EXIT_OK)


def _print_drift(drifted: list[Any]) -> None:
    if not drifted:
        return
    table = Table(title=f"drifted devices ({len(drifted)})")
    for column in ("certificate id", "thing", "problems", "repaired"):
        table.add_column(column, overflow="fold")
    for outcome in drifted[:_SHOWN]:
        problems = "; ".join(f"{p.code}: {p.detail}" for p in outcome.problems)
        table.add_row(
            Text(outcome.certificate_id or "-"),
            Text(outcome.thing_name or "-"),
            Text(problems),
            "yes" if outcome.repaired else (outcome.note or "no"),
        )
    console.print(table)
    if len(drifted) > _SHOWN:
        console.print(f"... and {len(drifted) - _SHOWN} more; see --report")


# -- activate / deactivate ---------------------------------------------------------------------


def _set_status(
    status: str,
    file: Path | None,
    ledger: str | None,
    run: str | None,
    no_ledger: bool,
    fmt: str,
    verifier: list[Path] | None,
    cert_type: str | None,
    concurrency: int,
    report: Path | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    verbose: int,
) -> None:
    from thingpress_core.operations import OperationInterrupted, set_status

    configure_logging(verbose)
    check_writable(report, "--report")
    iot = _service(endpoint_url, region, profile, concurrency)
    with ExitStack() as stack:
        source = _Source(
            stack, file=file, location=ledger, no_ledger=no_ledger, run_id=run, factory=iot.factory
        )
        target = _target(iot)
        devices, total = source.devices(target, fmt, verifier, cert_type)
        label = "activating" if status == "ACTIVE" else "deactivating"
        try:
            with usage_errors():
                result = _with_progress(
                    label,
                    total,
                    lambda progress: set_status(
                        iot,
                        devices,
                        status,  # type: ignore[arg-type]  # one of the two literals, chosen by the command
                        ledger=source.ledger,
                        target=target,
                        concurrency=concurrency,
                        progress=progress,
                    ),
                )
        except OperationInterrupted as stopped:
            raise _interrupted(stopped, report) from None
        _finish(result, report)
    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)


def _status_command(status: str) -> Callable[..., None]:
    """The ``activate`` or ``deactivate`` command: one signature, the status fixed."""

    def command(
        file: OptionalFileArg = None,
        ledger: OpsLedgerOpt = None,
        run: RunOpt = None,
        no_ledger: NoLedgerOpt = False,
        fmt: FormatOpt = "auto",
        verifier: VerifierOpt = None,
        cert_type: CertTypeOpt = None,
        concurrency: ConcurrencyOpt = 8,
        report: ReportOpt = None,
        endpoint_url: EndpointOpt = None,
        region: RegionOpt = None,
        profile: ProfileOpt = None,
        verbose: VerboseOpt = 0,
    ) -> None:
        _set_status(
            status, file, ledger, run, no_ledger, fmt, verifier, cert_type, concurrency, report,
            endpoint_url, region, profile, verbose,
        )  # fmt: skip

    command.__doc__ = f"""Set every device's certificate {status} (UpdateCertificate, 10/s); idempotent.

    Devices come from FILE or from the ledger (--ledger, --run); with a ledger, a device it
    shows {status} already costs no call, and the new status is recorded. Exit 1 when some failed.
    """
    return command


app.command("activate")(_status_command("ACTIVE"))
app.command("deactivate")(_status_command("INACTIVE"))


# -- rollback ----------------------------------------------------------------------------------


@app.command()
def rollback(
    ledger: OpsLedgerOpt = None,
    run: RunOpt = None,
    last: Annotated[bool, flag("--last", "Roll back the ledger's last import run.")] = False,
    dry_run: Annotated[bool, flag("--dry-run", "Print the plan with its counts; change nothing.")] = False,
    yes: Annotated[bool, flag("--yes", "Do not ask for confirmation.")] = False,
    concurrency: ConcurrencyOpt = 8,
    report: ReportOpt = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Undo what one import run made, and nothing else (--run ID or --last).

    In the order AWS requires: deactivate, detach policies, detach the thing principal, remove
    from groups, delete the thing, delete the certificate; only the steps the run made. Devices
    the run found, and shared policies, groups and types, are left as they were. Resumable: run
    it again after an interruption and it finishes. Exit 1 when some devices failed or were
    blocked by a later run.
    """
    from thingpress_core.operations import OperationInterrupted, plan_rollback, rollback_run

    configure_logging(verbose)
    check_writable(report, "--report")
    if run is not None and last:
        fail("--run and --last exclude each other; give one")
    if run is None and not last:
        fail("give the run to roll back: --run ID or --last")
    iot = _service(endpoint_url, region, profile, concurrency)
    with ExitStack() as stack:
        source = _Source(
            stack,
            file=None,
            location=ledger,
            no_ledger=False,
            run_id=run,
            factory=iot.factory,
            need_ledger=True,
        )
        target = _target(iot)
        assert source.ledger is not None
        chosen = source.last_import(target) if last else source.run
        if chosen is None:
            fail(f"the ledger has no import run in {target} to roll back")
        with usage_errors():
            plan = plan_rollback(source.ledger, chosen.run_id, target=target)
        _print_plan(plan)
        if dry_run:
            if report is not None:
                report.write_text(json.dumps(plan.model_dump(mode="json"), indent=2))
            raise typer.Exit(EXIT_OK)
        if plan.to_undo == 0:
            console.print("nothing to undo", highlight=False)
        elif not yes:
            if not sys.stdin.isatty():
                fail("rollback asks for confirmation; give --yes when not run from a terminal")
            typer.confirm(f"roll back run {chosen.run_id} ({plan.total_calls} calls)?", abort=True)
        try:
            with usage_errors():
                result = _with_progress(
                    "rolling back",
                    plan.devices,
                    lambda progress: rollback_run(
                        iot,
                        source.ledger,  # type: ignore[arg-type]  # checked above
                        chosen.run_id,
                        target=target,
                        concurrency=concurrency,
                        progress=progress,
                    ),
                )
        except OperationInterrupted as stopped:
            raise _interrupted(stopped, report) from None
        _finish(result, report)
    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)


def _print_plan(plan: RollbackPlan) -> None:
    table = Table(title=f"rollback plan for run {plan.run_id}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in (
        ("devices the run touched", plan.devices),
        ("to undo", plan.to_undo),
        ("untouched (the run found them)", plan.untouched),
        ("blocked by a later run", plan.blocked),
    ):
        table.add_row(name, str(value))
    for step, count in plan.steps.items():
        table.add_row(f"undo {step}", str(count))
    table.add_row("calls", str(plan.total_calls))
    table.add_row("at the default quotas", f"{plan.minimum_seconds():.0f} s at least")
    console.print(table)
    for line in plan.blocked_devices:
        err_console.print(f"blocked: {line}", highlight=False, markup=False)

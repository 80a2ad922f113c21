"""The commands ``inspect`` and ``import``."""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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
    PolicyOpt,
    ProfileOpt,
    RegionOpt,
    ReportOpt,
    ThingGroupOpt,
    ThingNamePrefixOpt,
    ThingTypeOpt,
    VerboseOpt,
    VerifierOpt,
    app,
    check_writable,
    client_factory,
    configure_logging,
    console,
    count_entries,
    err_console,
    fail,
    flag,
    open_manifest,
    parse_naming,
    parse_prefix,
    reader_options,
    unreadable,
    usage_errors,
    warn_unused_options,
)
from thingpress_core.cli._estimate import DEFAULT_WORKERS, account_resilience, choose_workers, print_estimate
from thingpress_core.cli._import_options import (
    ConcurrencyOpt,
    ExclusiveOpt,
    OnBadEntryOpt,
    PolicyViaGroupOpt,
    QuotasOpt,
)
from thingpress_core.cli._ledger import (
    LedgerOpt,
    NoLedgerOpt,
    RecheckOpt,
    import_ledger,
    input_digest,
)
from thingpress_core.cli._render import (
    manifest_section,
    print_manifest_notes,
    print_sandbox,
    print_summary,
    run_import,
)
from thingpress_core.errors import ManifestError, PreflightError

if TYPE_CHECKING:
    from thingpress_core.importer import ImportReport
    from thingpress_core.manifests import ManifestEntry, ManifestReader

logger = logging.getLogger("thingpress_core.cli")

InputArg = Annotated[
    str,
    typer.Argument(metavar="FILE", help="The manifest or certificate file, or s3://bucket/key."),
]


BillingGroupOpt = Annotated[
    str | None,
    typer.Option(
        "--billing-group",
        metavar="NAME",
        help="Create every thing in this billing group (no extra call; the pre-flight checks it exists).",
    ),
]
AttributeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attribute",
        metavar="KEY=VALUE",
        help="A thing attribute every thing gets (repeatable). At most 3 per thing without a thing "
        "type, 50 with one, counting thingpress_certificate_id and the manifest's vendor_id.",
    ),
]
NoManifestAttributesOpt = Annotated[
    bool,
    flag("--no-manifest-attributes", "Do not give things the vendor's id from the manifest (vendor_id)."),
]
StatusOpt = Annotated[
    str,
    typer.Option(
        "--status",
        metavar="ACTIVE|INACTIVE",
        help="The status certificates are registered with. A certificate registered before with "
        "another status is reported; --recheck sets it.",
    ),
]
CaCertificateOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca-certificate",
        exists=True,
        dir_okay=False,
        metavar="CA.pem",
        help="Register with this CA (registered and ACTIVE in the account) instead of without a CA; "
        "every certificate must chain to it.",
    ),
]


@app.command()
def inspect(
    ctx: typer.Context,
    source: InputArg,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    naming: NamingOpt = None,
    thing_name_prefix: ThingNamePrefixOpt = None,
    as_json: Annotated[bool, flag("--json", "One JSON object per certificate.")] = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Show the certificates of FILE (a path or s3://bucket/key): index, id, common name,
    thing name, issuer, expiry.

    The thing name is the one `import` would use (the same mapping, the same --naming and
    --thing-name-prefix); a
    certificate that is expired or not yet valid is marked, as `import` refuses it unless
    --allow-expired. Indexes count from 0, as in the JSON and in `import --report`.
    """
    from thingpress_core.certificates import thing_name_for

    file = local_input(ctx, source, endpoint_url, region, profile)
    chosen = parse_naming(naming)
    prefix = parse_prefix(thing_name_prefix)
    now = datetime.now(timezone.utc)
    table = Table(title=_shown(source), show_lines=False)
    for column in ("index", "certificate id", "common name", "thing name", "expires"):
        table.add_column(column, no_wrap=column != "common name", overflow="fold")
    table.add_column("issuer", overflow="fold", ratio=1)
    count = invalid = 0
    with usage_errors():
        reader = open_manifest(file, fmt, verifier, cert_type)
        warn_unused_options(file, fmt, reader.format.value, verifier, cert_type)
        for entry in reader:
            if isinstance(entry, ManifestError):  # not in "refuse" mode: the first one raises
                raise entry
            cert = entry.certificate
            name = thing_name_for(cert, naming=chosen, prefix=prefix, offered=entry.thing_name)
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
                expires = cert.not_after.date().isoformat()
                table.add_row(
                    str(entry.index),
                    cert.certificate_id[:16] + "…",  # the full id is in --json
                    Text(cert.common_name or "-"),  # certificate text is data, never markup
                    Text(name),
                    expires if validity == "valid" else f"{expires} [red]({validity})[/]",
                    Text(cert.issuer),
                )
    if not as_json:
        console.print(table)
        console.print(f"{count} certificate(s) in {_shown(source)} ({reader.format.value})")
    if invalid:
        err_console.print(
            f"warning: {invalid} certificate(s) expired or not yet valid; import refuses them "
            "unless --allow-expired",
            highlight=False,
        )
    print_manifest_notes(reader)


def _validity(not_before: datetime, not_after: datetime, now: datetime) -> str:
    if now < not_before:
        return "not yet valid"
    if now > not_after:
        return "expired"
    return "valid"


@app.command("import")
def import_(
    ctx: typer.Context,
    source: InputArg,
    policy: PolicyOpt = None,
    thing_group: ThingGroupOpt = None,
    thing_type: ThingTypeOpt = None,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    naming: NamingOpt = None,
    thing_name_prefix: ThingNamePrefixOpt = None,
    trust_ca: Annotated[
        Path | None,
        typer.Option(
            "--trust-ca",
            exists=True,
            metavar="FILE|DIR",
            help="CA certificate file or folder; certificates that do not chain to it fail.",
        ),
    ] = None,
    concurrency: ConcurrencyOpt = None,
    quotas: QuotasOpt = None,
    report: ReportOpt = None,
    dry_run: Annotated[
        bool,
        flag("--dry-run", "Read, verify and name everything and run the pre-flight check; register nothing."),
    ] = False,
    sandbox: Annotated[
        bool, flag("--sandbox", "Run against an embedded AWS stand-in (no account needed).")
    ] = False,
    sandbox_rate: Annotated[
        str,
        typer.Option(
            "--sandbox-rate",
            metavar="real|fast",
            help="With --sandbox: real runs at AWS's default quotas, as an account would (default); "
            "fast lifts the rate limits for a quick demo.",
        ),
    ] = "real",
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    on_bad_entry: OnBadEntryOpt = "auto",
    allow_expired: Annotated[
        bool, flag("--allow-expired", "Import certificates outside their validity period too.")
    ] = False,
    allow_multiple_things: Annotated[
        bool,
        flag(
            "--allow-multiple-things",
            "Attach a certificate that is already on another thing to this one too.",
        ),
    ] = False,
    billing_group: BillingGroupOpt = None,
    attribute: AttributeOpt = None,
    no_manifest_attributes: NoManifestAttributesOpt = False,
    status: StatusOpt = "ACTIVE",
    ca_certificate: CaCertificateOpt = None,
    exclusive: ExclusiveOpt = False,
    policy_via_group: PolicyViaGroupOpt = False,
    ledger: LedgerOpt = None,
    no_ledger: NoLedgerOpt = False,
    recheck: RecheckOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Import every certificate of FILE (a path or s3://bucket/key) into AWS IoT Core:
    certificate, thing, policies, groups, type, billing group, attributes.

    Every step AWS confirms is recorded in a ledger (--ledger; by default a file in the
    working directory), so running the same import again finishes what is left and skips
    what is done without an AWS call. --dry-run neither reads nor writes a ledger.

    Exit codes: 0 all imported or already present, 1 some failed, 2 a usage or setup error
    (nothing sent), 130 interrupted (the --report holds what finished and what did not).
    """
    from thingpress_core.certificates import TrustStore
    from thingpress_core.importer import (
        DEFAULT_LATENCY,
        CertificateImporter,
        ImportInterrupted,
        ImportOptions,
    )
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import IoTService

    configure_logging(verbose)
    if sandbox and endpoint_url:
        fail("--sandbox and --endpoint-url exclude each other; give one")
    if sandbox_rate not in ("real", "fast"):
        fail(f"--sandbox-rate must be real or fast, not {sandbox_rate!r}")
    check_writable(report, "--report")
    shown_options = reader_options(cert_type, verifier, on_bad_entry)
    setup = _Setup(source, report, shown_options, dry_run=dry_run)
    try:
        file = local_input(ctx, source, endpoint_url, region, profile)
        if status not in ("ACTIVE", "INACTIVE"):
            fail(f"--status must be ACTIVE or INACTIVE, not {status!r}")
        if quotas not in (None, "builtin", "auto"):
            fail(f"--quotas must be builtin or auto, not {quotas!r}")
        with usage_errors("--trust-ca "):
            trust_store = TrustStore.from_path(trust_ca) if trust_ca else None
        with usage_errors("--ca-certificate "):
            ca = _read_ca(ca_certificate)
        with usage_errors():
            options = ImportOptions(
                policies=tuple(policy or ()),
                thing_groups=tuple(thing_group or ()),
                thing_type=thing_type,
                naming=parse_naming(naming),
                thing_name_prefix=parse_prefix(thing_name_prefix),
                concurrency=concurrency or DEFAULT_WORKERS,
                trust_store=trust_store,
                dry_run=dry_run,
                allow_expired=allow_expired,
                allow_multiple_things=allow_multiple_things,
                recheck=recheck,
                status="INACTIVE" if status == "INACTIVE" else "ACTIVE",
                billing_group=billing_group,
                attributes=parse_attributes(attribute),
                manifest_attributes=not no_manifest_attributes,
                ca_certificate=ca,
                exclusive=exclusive,
                policy_target="thing_group" if policy_via_group else "certificate",
            )
        factory = (
            None
            if sandbox
            else client_factory(
                endpoint_url, region, profile, max_pool_connections=max(32, (concurrency or 64) * 2)
            )
        )
        # Count first so the progress bar can show an ETA; a bad file stops here with exit 2.
        with usage_errors():
            counting = setup.counting = open_manifest(file, fmt, verifier, cert_type, on_bad_entry)
            found = counting.format.value
            warn_unused_options(file, fmt, found, verifier, cert_type)
            total = count_entries(counting)
        logger.info("reading %s as %s (%s)", source, found, shown_options, extra={"operation": "read"})

        with ExitStack() as stack:
            box: Any = None
            limiter = None
            if sandbox:
                from thingpress_core.sandbox import Sandbox

                with usage_errors():
                    box = stack.enter_context(Sandbox())
                    box.create_resources(
                        policies=options.policies, thing_groups=options.thing_groups, thing_type=thing_type
                    )
                    _sandbox_extras(box, options)
                factory = box.factory
                if sandbox_rate == "fast":
                    limiter = RateLimiter({})
                err_console.print(
                    f"sandbox: AWS stand-in running at {box.endpoint_url} (nothing leaves this machine; "
                    f"{'no rate limits' if limiter else 'AWS default quotas'})",
                    highlight=False,
                )
            assert factory is not None
            kept = import_ledger(
                stack, location=ledger, disabled=no_ledger, sandbox=sandbox, dry_run=dry_run, factory=factory
            )
            rate_limits: dict[str, float] = {}
            if limiter is None:
                with usage_errors():
                    resilience = account_resilience(
                        factory, options, quotas or factory.settings.resilience.quotas
                    )
                limiter = RateLimiter(resilience)
                rate_limits = resilience.effective_rate_limits()
            if concurrency is None:
                workers = choose_workers(options, rate_limits, DEFAULT_LATENCY)
                options = options.model_copy(update={"concurrency": workers})
            if dry_run:
                print_estimate(options, total, rate_limits, latency=DEFAULT_LATENCY, workers=concurrency)
            importer = CertificateImporter(IoTService(factory, limiter=limiter), options=options, ledger=kept)
            with usage_errors():
                reader = open_manifest(file, fmt, verifier, cert_type, on_bad_entry)
            interrupted = False
            try:
                with usage_errors():
                    try:
                        result = run_import(
                            importer,
                            reader,
                            total,
                            input_name=source,
                            input_digest=input_digest(file) if kept is not None else None,
                        )
                    except PreflightError as exc:
                        fail(f"pre-flight check failed: {exc}")
            except ImportInterrupted as stopped:
                interrupted = True
                result = stopped.report
            setup.began = True  # a plain KeyboardInterrupt from run_import came before any certificate

            print_summary(result, source=source, fmt=found, options=shown_options)
            print_manifest_notes(reader)
            if report:
                _write_report(report, result, manifest_section(reader, shown_options))
            if interrupted:
                said = (
                    f"{result.total} finished, {len(result.unfinished)} unfinished"
                    if result.total or result.unfinished
                    else "before any certificate was sent"
                )
                err_console.print(
                    f"interrupted: {said} (run the same import again to finish it)", highlight=False
                )
                raise typer.Exit(EXIT_INTERRUPTED)
            if box is not None:
                print_sandbox(box)
        raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)
    except KeyboardInterrupt as exc:
        # Ctrl-C while the sandbox starts, the manifest is read or the pre-flight runs: the
        # importer's own interruption (ImportInterrupted) and one after the run are not ours
        if isinstance(exc, ImportInterrupted) or setup.began:
            raise
        setup.interrupted()


class _Setup:
    """What ``import`` knows before its first certificate: enough to say so, and to write the
    --report, when Ctrl-C comes while the sandbox starts, the manifest is read or the pre-flight
    runs (the importer reports an interruption during the run itself)."""

    def __init__(self, source: str, report: Path | None, options: dict[str, Any], *, dry_run: bool) -> None:
        self.source = source
        self.report = report
        self.options = options
        self.dry_run = dry_run
        self.started_at = datetime.now(timezone.utc)
        self._start = time.monotonic()
        self.counting: ManifestReader[ManifestEntry | ManifestError] | None = None
        self.began = False

    def interrupted(self) -> NoReturn:
        """One line, the report of a run that sent nothing (total 0, interrupted), exit 130."""
        from thingpress_core.importer import ImportReport

        err_console.print("interrupted before the import began: no certificate was sent", highlight=False)
        if self.report is not None:
            result = ImportReport(
                total=0,
                imported=0,
                already_present=0,
                failed=0,
                skipped=0,
                dry_run=self.dry_run,
                interrupted=True,
                started_at=self.started_at,
                duration_seconds=max(time.monotonic() - self._start, 0.0),
                rate_per_second=0.0,
            )
            _write_report(self.report, result, self._manifest())
        raise typer.Exit(EXIT_INTERRUPTED)

    def _manifest(self) -> dict[str, Any]:
        """The report's manifest section: what the counting pass read, if it began, else the
        same keys with nothing read."""
        if self.counting is not None:
            return manifest_section(self.counting, self.options)
        return {
            "source": self.source,
            "format": None,
            "reader_options": self.options,
            "entries": 0,
            "certificates": 0,
            "complete": False,
            "skipped": [],
            "notes": [],
        }


def _shown(source: str) -> str:
    return source if source.startswith("s3://") else Path(source).name


def local_input(
    ctx: typer.Context, source: str, endpoint_url: str | None, region: str | None, profile: str | None
) -> Path:
    """FILE as a local path: a file as it is, an ``s3://bucket/key`` object streamed through
    `S3Service` (refused past the manifest size limit before its body is read when S3 announces
    its size, else as soon as the stream goes past it) into a private temporary folder that
    lives as long as the command. Everything after (format detection, the reader, the report,
    the input digest) then reads it exactly as a local file."""
    # click 8.2 and later, under older typer, no longer enforce a required argument: checked here
    if not source:
        fail(f"missing argument FILE (see thingpress-core {ctx.info_name} --help)")
    if not source.startswith("s3://"):
        path = Path(source)
        problem = unreadable(path)
        if problem:
            fail(f"FILE {source} {problem}; give a manifest or certificate file")
        return path
    import shutil
    import tempfile
    from pathlib import PurePosixPath

    from thingpress_core.manifests import DEFAULT_MAX_MANIFEST_BYTES
    from thingpress_core.services import S3Service

    bucket, _, key = source[len("s3://") :].partition("/")
    if not bucket or not key:
        fail(f"an S3 FILE is s3://bucket/key, not {source!r}")
    folder = Path(ctx.with_resource(tempfile.TemporaryDirectory(prefix="thingpress-s3-")))
    local = folder / (PurePosixPath(key).name or "manifest")
    with usage_errors(f"{source}: "):
        s3 = S3Service(client_factory(endpoint_url, region, profile, services=("s3",)))
        opened = s3.open_object(bucket, key, max_bytes=DEFAULT_MAX_MANIFEST_BYTES)
        with opened as stream, local.open("wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    logger.info("read %s into a temporary file", source, extra={"operation": "s3.GetObject"})
    return local


def parse_attributes(pairs: list[str] | None) -> dict[str, str]:
    """``--attribute KEY=VALUE`` values as a mapping; a pair without ``=`` or a key given twice
    is a usage error (the names and values themselves are checked by `ImportOptions`)."""
    attributes: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--attribute takes KEY=VALUE, not {pair!r}")
        if key in attributes:
            fail(f"--attribute {key!r} is given twice")
        attributes[key] = value
    return attributes


def _read_ca(path: Path | None) -> Any:
    """The CA certificate of ``--ca-certificate`` (a bounded read), or None."""
    if path is None:
        return None
    from thingpress_core.certificates import DEFAULT_MAX_CERTIFICATE_BYTES, load_certificates

    with path.open("rb") as stream:  # one byte past the limit, so load_certificates refuses it
        data = stream.read(DEFAULT_MAX_CERTIFICATE_BYTES + 1)
    found = load_certificates(data, source=str(path))
    if len(found) != 1:
        fail(f"{path}: expected one certificate, found {len(found)}")
    return found[0]


def _sandbox_extras(box: Any, options: Any) -> None:
    """In the sandbox, the billing group and the CA an import asks for exist (ACTIVE)."""
    iot = box.factory.client("iot")
    if options.billing_group is not None:
        iot.create_billing_group(billingGroupName=options.billing_group)
    if options.ca_certificate is not None:
        iot.register_ca_certificate(caCertificate=options.ca_certificate.pem, setAsActive=True)


def _write_report(path: Path, result: ImportReport, manifest: dict[str, Any]) -> None:
    """The report as JSON, with what the manifest held (format, options, notes) beside it."""
    data = result.model_dump(mode="json")
    data["manifest"] = manifest
    path.write_text(json.dumps(data, indent=2))
    err_console.print(f"report written to {path}", highlight=False)

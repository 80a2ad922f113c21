"""The commands ``enqueue`` (a manifest into SQS for the import Lambda) and ``version``."""

from __future__ import annotations

from typing import Annotated

import typer

from thingpress_core.cli._app import (
    EXIT_FAILED,
    EXIT_OK,
    CertTypeOpt,
    EndpointOpt,
    FileArg,
    FormatOpt,
    NamingOpt,
    PolicyOpt,
    ProfileOpt,
    RegionOpt,
    ThingGroupOpt,
    ThingNamePrefixOpt,
    ThingTypeOpt,
    VerifierOpt,
    app,
    client_factory,
    console,
    count_entries,
    err_console,
    fail,
    open_manifest,
    parse_naming,
    parse_prefix,
    usage_errors,
    warn_unused_options,
)
from thingpress_core.cli._import_options import OnBadEntryOpt
from thingpress_core.cli._render import print_manifest_notes
from thingpress_core.errors import ThingpressError


@app.command()
def enqueue(
    file: FileArg,
    queue_url: Annotated[
        str, typer.Option("--queue-url", metavar="URL", help="The SQS queue the import Lambda reads.")
    ],
    policy: PolicyOpt = None,
    thing_group: ThingGroupOpt = None,
    thing_type: ThingTypeOpt = None,
    fmt: FormatOpt = "auto",
    verifier: VerifierOpt = None,
    cert_type: CertTypeOpt = None,
    naming: NamingOpt = None,
    thing_name_prefix: ThingNamePrefixOpt = None,
    per_message: Annotated[
        int, typer.Option("--per-message", min=1, metavar="N", help="Certificates per SQS message.")
    ] = 1,
    on_bad_entry: OnBadEntryOpt = "auto",
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Send every certificate of FILE to an SQS queue for the import Lambda (see the deployment guide)."""
    # click 8.2 and later, under older typer, no longer enforce required parameters: checked here
    if file is None:  # pyright: ignore[reportUnnecessaryComparison]  # click may leave it unset
        fail("missing argument FILE (see thingpress-core enqueue --help)")
    if not queue_url:
        fail("missing option --queue-url (see thingpress-core enqueue --help)")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from thingpress_core.importer import ImportOptions
    from thingpress_core.integrations.aws_lambda import enqueue_manifest
    from thingpress_core.services import SQSService

    with usage_errors():
        options = ImportOptions(
            policies=tuple(policy or ()),
            thing_groups=tuple(thing_group or ()),
            thing_type=thing_type,
            naming=parse_naming(naming),
            thing_name_prefix=parse_prefix(thing_name_prefix),
        )
    sqs = SQSService(client_factory(endpoint_url, region, profile, services=("sqs",)))
    with usage_errors():
        counting = open_manifest(file, fmt, verifier, cert_type, on_bad_entry)
        warn_unused_options(file, fmt, counting.format.value, verifier, cert_type)
        total = count_entries(counting)
        reader = open_manifest(file, fmt, verifier, cert_type, on_bad_entry)
    with Progress(
        TextColumn("[bold]enqueueing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("enqueue", total=total)
        with usage_errors():
            try:
                result = enqueue_manifest(
                    reader,
                    queue_url,
                    options=options,
                    sqs=sqs,
                    per_message=per_message,
                    progress=lambda p: progress.update(task, completed=p.total),
                )
            except ThingpressError:
                progress.live.transient = True  # the error line says what happened, alone
                raise
    console.print(f"sent {result.sent} of {result.total} certificate(s); {len(result.failed)} failed")
    for failure in result.failed[:50]:
        console.print(f"  index {failure.index}: {failure.reason}", highlight=False, markup=False)
    print_manifest_notes(reader)
    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)


@app.command()
def version() -> None:
    """Print the installed version."""
    from thingpress_core._version import version as _version

    console.print(f"thingpress-core {_version()}")

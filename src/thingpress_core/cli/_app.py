"""The command's frame: the typer app, its consoles, exit codes, shared options, and setup.

Everything a user can get wrong before the first AWS call is checked here, up front, and
ends as one line ``error: ...`` and exit code 2: a bad option or ``THINGPRESS_*`` value, a
region or profile that does not resolve, an output path that cannot be written, a missing
extra. Messages name the command's flags, not the library's keywords.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

try:
    import typer
    from rich.console import Console
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise SystemExit(
        "the thingpress-core command needs its extra: pip install 'thingpress-core[cli]'"
    ) from exc

from thingpress_core.cli._group import ThingpressGroup
from thingpress_core.errors import ConfigurationError, ThingpressError

if TYPE_CHECKING:
    from thingpress_core._vocabulary import ThingNamingChoice
    from thingpress_core.clients import ClientFactory
    from thingpress_core.errors import ManifestError
    from thingpress_core.manifests import ManifestEntry, ManifestReader

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "app", "console", "err_console"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # some certificates failed
EXIT_USAGE: Final = 2  # a usage or setup error: nothing was sent
EXIT_INTERRUPTED: Final = 130  # Ctrl-C

app: typer.Typer = typer.Typer(
    name="thingpress-core",
    help="Bulk-import X.509 device certificates into AWS IoT Core.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=ThingpressGroup,
)
console: Console = Console()
err_console: Console = Console(stderr=True)

# -- shared options ---------------------------------------------------------------------------


def regular_file(path: Path | None) -> Path | None:
    """FILE must be a regular file: a FIFO or a device passes click's ``exists`` check, then
    blocks the command forever (a FIFO nobody writes) or fails mid-read."""
    if path is not None:
        problem = unreadable(path)
        if problem:
            raise typer.BadParameter(f"{path} {problem}; give a manifest or certificate file")
    return path


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file ("is a folder", "does not exist", ...),
    or None. One byte is read, so a file the system refuses (``/proc/self/mem``, a file
    without read permission) is named here, not mid-import."""
    if path.is_dir():
        return "is a folder"
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a regular file (a FIFO or a device)"
    try:
        with path.open("rb") as stream:
            stream.read(1)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


FileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE",
        callback=regular_file,
        show_default=False,
        help="The manifest or certificate file.",
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="auto (detect from the content, then the name), pem, generated, espressif, "
        "microchip or infineon.",
    ),
]
VerifierOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--verifier",
        exists=True,
        metavar="FILE|DIR",
        help="Microchip manifest signer certificate, or a folder of them (repeatable).",
    ),
]
CertTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--cert-type", metavar="SLOT", help="Infineon certificate slot: E0E0 (default), E0E1 or E0E2."
    ),
]
NamingOpt = Annotated[
    str | None,
    typer.Option(
        "--naming",
        "--thing-name",
        metavar="common_name|certificate_id",
        help="Name things so, whatever the manifest offers. Default: the manifest's own name "
        "(MAC, uniqueId), else the common name.",
    ),
]
ThingNamePrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--thing-name-prefix",
        metavar="TEXT",
        help="Put TEXT in front of every thing name, whatever its source (letters, digits, ':', '_' "
        "and '-'; at most 110 characters).",
    ),
]
PolicyOpt = Annotated[
    list[str] | None, typer.Option("--policy", metavar="NAME", help="IoT policy to attach (repeatable).")
]
ThingGroupOpt = Annotated[
    list[str] | None,
    typer.Option("--thing-group", metavar="NAME", help="Thing group to add each thing to (repeatable)."),
]
ThingTypeOpt = Annotated[
    str | None, typer.Option("--thing-type", metavar="NAME", help="Thing type of each thing.")
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint-url", metavar="URL", help="Send AWS calls here.")
]
RegionOpt = Annotated[str | None, typer.Option("--region", metavar="REGION", help="AWS region.")]
ProfileOpt = Annotated[str | None, typer.Option("--profile", metavar="NAME", help="AWS profile.")]
ReportOpt = Annotated[
    Path | None, typer.Option("--report", metavar="PATH", help="Write the JSON report here.")
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        metavar="",
        show_default=False,
        help="More log output: -v INFO, -vv DEBUG.",
    ),
]


def flag(name: str, help: str) -> Any:
    """A boolean flag shown without a value placeholder."""
    return typer.Option(name, metavar="", help=help)


# -- errors -----------------------------------------------------------------------------------

# The library's errors name its keywords; at the command line the flags are what to change.
_FLAG_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), flag_text)
    for pattern, flag_text in (
        (r"on_error='skip'", "--on-bad-entry fail"),
        (r"on_error='raise'", "--on-bad-entry refuse"),
        (r"\bverifiers=(?!\S)", "--verifier FILE"),
        (r"\bverifiers=", "--verifier "),
        (r"\bpass format=", "pass --format"),
        (r"\bformat=(?!\S)", "--format"),
        (r"\bformat=", "--format "),
        (r"\bcert_type=", "--cert-type "),
        (r"\bnaming=", "--naming "),
        (r"\bregion=", "--region "),
        (r"\bprofile=", "--profile "),
        (r"policy_target='thing_group' \(--policy-via-group\)", "--policy-via-group"),
        (r"manifest_attributes=False / --no-manifest-attributes", "--no-manifest-attributes"),
        (r"\ballow_expired\b", "--allow-expired"),
        (r"\ballow_multiple_things\b", "--allow-multiple-things"),
    )
)
_FLAGS: dict[str, str] = {
    "verifiers": "--verifier",
    "format": "--format",
    "cert_type": "--cert-type",
    "naming": "--naming",
    "thing_name_prefix": "--thing-name-prefix",
    "region": "--region",
    "profile": "--profile",
    "endpoint_url": "--endpoint-url",
    "policies": "--policy",
    "thing_groups": "--thing-group",
    "thing_type": "--thing-type",
    "concurrency": "--concurrency",
    "attributes": "--attribute",
    "billing_group": "--billing-group",
    "status": "--status",
    "trust_store": "--trust-ca",
    "ca_certificate": "--ca-certificate",
    "manifest_attributes": "--no-manifest-attributes",
    "policy_target": "--policy-via-group",
}


# the command has no flag for the manifest size limit: what to do is split the file
_SIZE_LIMIT = re.compile(
    r"larger than max_bytes=(\d+); refusing to read it \(raise max_bytes to read it whole\)"
)


def _size_limit(match: re.Match[str]) -> str:
    limit = int(match.group(1))
    mib = f"{limit / (1 << 20):g} MiB"
    return f"larger than the command's limit of {limit} bytes ({mib}); split it into smaller files"


def for_cli(message: str) -> str:
    """``message`` with the library's keyword spellings replaced by this command's flags."""
    for pattern, replacement in _FLAG_WORDS:
        message = pattern.sub(replacement, message)
    message = _SIZE_LIMIT.sub(_size_limit, message).replace(": Value error, ", ": ")
    return " ".join(message.split())


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: <message>`` (one line, flags named as the command knows them) and exit."""
    from rich.markup import escape

    # the message is data (file names, reasons, "pip install 'thingpress-core[manifests]'"),
    # not markup
    err_console.print(f"[bold red]error:[/] {escape(for_cli(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def explain(exc: BaseException) -> str:
    """One sentence for an error a user can fix, naming the flag or variable to change."""
    if isinstance(exc, ConfigurationError) and str(exc).startswith("invalid configuration in "):
        return _options_problems(exc)
    if isinstance(exc, ConfigurationError) and exc.variable in _FLAGS and not str(exc).startswith("invalid"):
        flag_name = _FLAGS[exc.variable]
        if flag_name not in for_cli(str(exc)):
            return f"{exc} ({flag_name})"
    return str(exc)


@contextmanager
def usage_errors(prefix: str = "") -> Generator[None]:
    """Turn an error a user can fix into one ``error:`` line and exit code 2."""
    try:
        yield
    except ThingpressError as exc:  # MissingExtraError too: it says which extra to install
        fail(prefix + explain(exc))


def _options_problems(exc: ConfigurationError) -> str:
    """An options model's validation error with each field named as its flag, and without the
    model's repr (``ImportOptions={'policies': ...}``) the library's message carries."""
    from pydantic import ValidationError

    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return str(exc)
    problems: list[str] = []
    for item in cause.errors(include_url=False):
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = [str(part) for part in item.get("loc", ())]
        if loc and loc[0] in _FLAGS:
            message = f"{_FLAGS[loc[0]]}: {message}"
        problems.append(message)
    return "; ".join(problems)


# -- setup checks, before any AWS call ---------------------------------------------------------


def check_writable(path: Path | None, flag_name: str) -> None:
    """Fail now, not after a day-long import, when ``path`` cannot be written."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path()
    if path.is_dir():
        fail(f"{flag_name} {path} is a folder; give a file name")
    if not parent.is_dir():
        fail(f"{flag_name} {path}: the folder {parent} does not exist; create it or choose another path")
    # Try it: os.access says yes to root everywhere, also in /proc or on a read-only mount.
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if not existed and isinstance(exc, FileNotFoundError):
            # the folder exists (checked above), yet says there is none: it takes no new files
            # (/proc, /sys), and "No such file or directory" alone would send the user looking
            reason = f"no file can be created in {parent}: {reason}"
        fail(f"{flag_name} {path} cannot be written ({reason}); choose another path")
    if not existed:
        path.unlink(missing_ok=True)


def client_factory(
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    *,
    services: tuple[str, ...] = ("iot",),
    **extra: Any,
) -> ClientFactory:
    """A factory from the environment's settings with the command line's choices on top, its
    clients built (no AWS call) so a missing region or an unknown profile fails here."""
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    region_from_env = None
    if not region and not os.environ.get("THINGPRESS_REGION"):
        # boto3 reads AWS_DEFAULT_REGION only; the AWS CLI v2 and the other SDKs read AWS_REGION
        # first, and so does this command (the profile's region comes after both)
        region_from_env = region = os.environ.get("AWS_REGION") or None
    if not profile and not os.environ.get("THINGPRESS_PROFILE"):
        profile = os.environ.get("AWS_PROFILE") or None  # as boto3 would, but named in our errors
    given: dict[str, Any] = {"endpoint_url": endpoint_url, "region": region, "profile": profile}
    with usage_errors(), _as_flags(given, from_aws_region=region_from_env), _credential_errors():
        factory = ClientFactory(ThingpressSettings(**{k: v for k, v in given.items() if v}, **extra))
        for name in services:
            factory.client(name)  # type: ignore[call-overload]  # one of the literal service names
        check_credentials(factory)
    return factory


@contextmanager
def _as_flags(given: dict[str, Any], *, from_aws_region: str | None) -> Generator[None]:
    """A settings error about a value the command line gave names its flag, not the
    ``THINGPRESS_*`` variable the settings model knows it by."""
    try:
        yield
    except ConfigurationError as exc:
        message = str(exc)
        for field, value in given.items():
            variable = f"THINGPRESS_{field.upper()}="
            if value and variable in message:
                source = "AWS_REGION=" if field == "region" and value == from_aws_region else None
                message = message.replace(variable, source or f"{_FLAGS[field]} ")
        raise ConfigurationError(message, variable=exc.variable, value=exc.value) from exc


@contextmanager
def _credential_errors() -> Generator[None]:
    """botocore's errors while it loads credentials (a failing credential_process, an SSO
    profile not signed in, a role it cannot assume) as one line: without this they come at
    the first call, as that call's failure, or from every certificate of the import."""
    from botocore.exceptions import BotoCoreError

    # botocore logs each failed refresh with its traceback before it raises; the one line
    # below says the same
    quiet = [logging.getLogger(name) for name in ("botocore.credentials", "botocore.tokens")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    except BotoCoreError as exc:
        hint = "sign in with 'aws sso login'" if "SSO" in type(exc).__name__ else "fix them"
        fail(f"the AWS credentials cannot be loaded ({exc}); {hint}, or pass another --profile")
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def check_credentials(factory: ClientFactory) -> None:
    """Fail now when boto3's credential chain finds nothing, or finds credentials it cannot
    load: botocore would otherwise raise at the first call, worded as that call's failure.
    Loading them makes no call to the services the command uses (an SSO profile asks the SSO
    portal, an EC2 instance its metadata service, as the first call would)."""
    found = factory.session.get_credentials()
    if found is not None:
        found.get_frozen_credentials()  # resolves deferred ones (SSO, credential_process)
    else:
        fail(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass "
            "--profile (or set THINGPRESS_PROFILE or AWS_PROFILE), or sign in with 'aws sso login'"
        )


def parse_naming(value: str | None) -> ThingNamingChoice | None:
    """The --naming value, in the one spelling the library uses (0.1.0's dashed one still works)."""
    namings: dict[str, ThingNamingChoice] = {"common_name": "common_name", "certificate_id": "certificate_id"}
    if value is None:
        return None
    if value in namings:
        return namings[value]
    dashed = value.replace("-", "_")
    if dashed in namings:
        err_console.print(f"note: --naming {value} is spelt {dashed} now", highlight=False, style="yellow")
        return namings[dashed]
    fail(f"--naming must be common_name or certificate_id, not {value!r}")


# thing_name_for's own limit: a name it shortens keeps the prefix, "-" and 16 hex digits
_PREFIX_LIMIT: Final = 110


def parse_prefix(value: str | None) -> str | None:
    """The --thing-name-prefix value, checked here: `ImportOptions` bounds only its length, and
    the names it makes would otherwise fail one certificate at a time."""
    from thingpress_core.certificates import THING_NAME_PATTERN

    if value is None:
        return None
    if THING_NAME_PATTERN.match(value) is None or len(value) > _PREFIX_LIMIT:
        fail(
            f"--thing-name-prefix must be 1 to {_PREFIX_LIMIT} characters of letters, digits, "
            f"':', '_' and '-', not {value!r}"
        )
    return value


def configure_logging(verbose: int) -> None:
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


# -- manifests --------------------------------------------------------------------------------

_ON_BAD_ENTRY = ("auto", "fail", "refuse")


def open_manifest(
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

    if on_bad_entry not in _ON_BAD_ENTRY:
        fail(f"--on-bad-entry must be auto, fail or refuse, not {on_bad_entry!r}")
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


def count_entries(reader: ManifestReader[ManifestEntry | ManifestError]) -> int:
    """How many entries ``reader`` holds (for the progress bar), quietly: a bad entry is logged
    once, when the import reads it, not once more by this first pass."""
    quiet = logging.getLogger("thingpress_core.manifests")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return sum(1 for _ in reader)
    finally:
        quiet.setLevel(level)


def warn_unused_options(
    path: Path, fmt: str, found: str, verifiers: list[Path] | None, cert_type: str | None
) -> None:
    """Say so when an option does not apply to the file at hand, or the content disagrees
    with an explicit --format."""
    from thingpress_core.errors import ManifestError
    from thingpress_core.manifests import detect_format

    if cert_type and found != "infineon":
        err_console.print(
            f"warning: --cert-type applies to Infineon archives; {path} is {found}", style="yellow"
        )
    if verifiers and found != "microchip":
        err_console.print(
            f"warning: --verifier applies to Microchip manifests; {path} is {found}", style="yellow"
        )
    if fmt != "auto":
        try:
            looks = detect_format(path).value
        except (ManifestError, ConfigurationError):
            return
        if looks != fmt:
            err_console.print(
                f"warning: --format {fmt} was given, but {path} looks like a {looks} manifest",
                style="yellow",
                highlight=False,
                markup=False,
            )


def reader_options(cert_type: str | None, verifiers: list[Path] | None, on_bad_entry: str) -> dict[str, Any]:
    """The reader's options as the summary and the JSON report show them."""
    shown: dict[str, Any] = {"on_bad_entry": on_bad_entry}
    if cert_type:
        shown["cert_type"] = cert_type
    if verifiers:
        shown["verifiers"] = [str(v) for v in verifiers]
    return shown

"""The import ledger seen from an import: what a re-run costs, what the ledger costs a run.

Every figure is a ratio of two things measured in the same run. The input is a manifest FILE
read by the real reader (`read_manifest`), in the ``generated`` format: one base64 PEM
certificate per line, the format Thingpress itself defined for certificates an operator's own
CA issued in bulk, the case of the largest single manifests (a vendor reel holds a few
thousand devices; an own-CA batch, a whole production run). It streams line by line, so
memory does not grow with the file. Its parsing costs about what a PEM bundle's does (both
end in the same DER parse), so the choice does not flatter the ratios.

1. ``re-run over a finished ledger``: a manifest of N certificates (100,000; 10,000 with
   ``--quick``) is imported once into a `SqliteLedger` through an in-memory IoT, so the
   ledger is written by the real importer. Then, interleaved and best of the rounds: (a)
   reading the file with `read_manifest` and iterating every entry, nothing else, and (b)
   `import_all` over the same file with the finished ledger. (b) makes no AWS call (asserted:
   the report's and the fake's counters are both empty, every device ``already_present``).
   Reported: wall(b) / wall(a), target <= 2.0; wall(b) / wall(c), (c) the same `import_all`
   as a dry run without a ledger (it reads, parses, checks the validity of and names every
   certificate and sends nothing: what an import costs before any call or ledger read), so
   the note gives the ledger's own cost per device; and the AWS calls of (b) against the floor
   of 5 per certificate a run without a ledger makes.
2. ``throughput with the SQLite ledger ÷ without``: bench_importer's throughput harness (the
   real `IoTService` and its limiter, in-process moto, `FaultInjector` adding 20 ms to every
   IoT call and enforcing the ``aws-iot-defaults`` quotas), same count and concurrency, each
   run on a fresh account and a fresh ledger. Runs alternate (none, SQLite, DynamoDB) and
   repeat; the figure is the median of the per-round ratios. Target >= 0.97.
3. ``throughput with a DynamoDB ledger on moto ÷ without``: the same, the ledger a
   `DynamoDBLedger` on moto's in-process DynamoDB. No target; the note says what bounds it.
4. ``ledger bytes per device`` (the .db file plus its -wal after close) at 10,000 and
   100,000 devices (2,000 and 10,000 with ``--quick``), and ``peak RSS during the re-run``:
   the re-run of figure 1 in a child process per size, which resets its peak resident set
   size (Linux ``/proc/self/clear_refs``) once its modules are imported, so the imports' own
   transient peak does not hide the re-run's; elsewhere ``wait4``'s peak of the whole child.
   The ratio large / small should be about 1 (the re-run streams).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fake_iot import CountingIoT, Registration
from _harness import Result
from bench_importer import (
    ACCOUNT,
    FLOOR,
    LATENCY,
    REGION,
    _backend,
    _fake_aws_environment,
    _options,
    create_import_resources,
)

BENCH = "ledger_import"
TABLE = "bench-import-ledger"


class MemoryIoT(CountingIoT):
    """`CountingIoT` with the importer's current signatures: every certificate is new, every
    resource exists, each call is counted, nothing is kept."""

    def register_certificate(
        self, cert: Any, *, status: str = "ACTIVE", created_after: object = None
    ) -> Registration:
        return super().register_certificate(cert, status=status)

    def create_thing(self, name: str, *, thing_type: str | None = None, attributes: object = None) -> object:
        self._count("iot.CreateThing")
        return {"name": name}


def _target() -> Any:
    from thingpress_core.ledger import Target

    return Target(account_id=ACCOUNT, region=REGION)


# -- the manifest ------------------------------------------------------------------------------


def _write_manifests(directory: Path, sizes: tuple[int, ...]) -> dict[int, tuple[Path, str]]:
    """One generated manifest per size, each the first ``size`` lines of the largest (so one
    generation serves them all): size -> (path, SHA-256 of the file)."""
    from thingpress_core.certificates.generate import (
        generate_ca,
        generate_device_certificates,
        generated_manifest_lines,
    )

    largest = max(sizes)
    paths = {size: directory / f"fleet-{size}.txt" for size in sizes}
    digests = {size: hashlib.sha256() for size in sizes}
    with contextlib.ExitStack() as stack:
        files = {size: stack.enter_context(open(path, "wb")) for size, path in paths.items()}
        certs = generate_device_certificates(largest, ca=generate_ca(), cn_prefix="fleet-")
        for i, line in enumerate(generated_manifest_lines(certs)):
            data = line.encode("ascii") + b"\n"
            for size, out in files.items():
                if i < size:
                    out.write(data)
                    digests[size].update(data)
    return {size: (paths[size], digests[size].hexdigest()) for size in sizes}


# -- figure 1: a re-run over a finished ledger ---------------------------------------------------


def _fill_ledger(manifest: Path, digest: str, db: Path, count: int) -> float:
    """Import ``manifest`` into a new ledger at ``db`` through the in-memory IoT; seconds taken."""
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.ledger import SqliteLedger
    from thingpress_core.manifests import read_manifest

    started = time.perf_counter()
    with SqliteLedger(db) as ledger:
        importer = CertificateImporter(MemoryIoT(), options=_options(), ledger=ledger, target=_target())
        report = importer.import_all(read_manifest(manifest), input_name=manifest.name, input_digest=digest)
    assert report.imported == count and report.failed == 0, report.summary()
    return time.perf_counter() - started


def _ledger_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def _read_all(manifest: Path) -> int:
    from thingpress_core.manifests import read_manifest

    count = 0
    for _ in read_manifest(manifest):
        count += 1
    return count


def _rerun(manifest: Path, digest: str, db: Path, count: int) -> float:
    """`import_all` over ``manifest`` with the finished ledger at ``db``: seconds taken. Fails
    unless every device is already present and no AWS call was made."""
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.ledger import SqliteLedger
    from thingpress_core.manifests import read_manifest

    with SqliteLedger(db) as ledger:
        iot = MemoryIoT()
        importer = CertificateImporter(iot, options=_options(), ledger=ledger, target=_target())
        gc.collect()
        started = time.perf_counter()
        report = importer.import_all(read_manifest(manifest), input_name=manifest.name, input_digest=digest)
        seconds = time.perf_counter() - started
    calls = iot.stats().calls
    assert report.calls == {} and calls == {}, f"a re-run over a finished ledger made AWS calls: {calls}"
    assert report.already_present == count and report.total == count, report.summary()
    return seconds


def _dry_run(manifest: Path, count: int) -> float:
    """`import_all` over ``manifest`` as a dry run, no ledger: reads, parses, checks the
    validity of and names every certificate, sends nothing. Seconds taken."""
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.manifests import read_manifest

    options = _options().model_copy(update={"dry_run": True, "preflight": False})
    importer = CertificateImporter(MemoryIoT(), options=options)
    gc.collect()
    started = time.perf_counter()
    report = importer.import_all(read_manifest(manifest))
    seconds = time.perf_counter() - started
    assert report.skipped == count and report.calls == {}, report.summary()
    return seconds


def bench_rerun(manifest: Path, digest: str, db: Path, count: int, rounds: int) -> list[Result]:
    read_times: list[float] = []
    dry_times: list[float] = []
    rerun_times: list[float] = []
    for _ in range(rounds):  # interleaved, so a slow moment of the shared machine hits all
        gc.collect()
        started = time.perf_counter()
        assert _read_all(manifest) == count
        read_times.append(time.perf_counter() - started)
        dry_times.append(_dry_run(manifest, count))
        rerun_times.append(_rerun(manifest, digest, db, count))
    read_s, dry_s, rerun_s = min(read_times), min(dry_times), min(rerun_times)
    ratio = rerun_s / read_s
    return [
        Result(
            BENCH,
            f"re-run over a finished ledger ÷ the same import as a dry run ({count:,} devices)",
            rerun_s,
            "s",
            baseline=dry_s,
            baseline_name="import_all --dry-run, no ledger (read, parse, check, name)",
            ratio=rerun_s / dry_s,
            target="ratio <= 2.0",
            ok=rerun_s / dry_s <= 2.0,
            note=f"the ledger's own cost per device: {(rerun_s - dry_s) / count * 1e6:.1f} us "
            f"(dry run {dry_s / count * 1e6:.1f} us/device, of which reading and parsing "
            f"{read_s / count * 1e6:.1f})",
        ),
        Result(
            BENCH,
            f"re-run over a finished ledger, import_all wall time ({count:,} devices, generated manifest)",
            rerun_s,
            "s",
            baseline=read_s,
            baseline_name="read_manifest over the same file",
            ratio=ratio,
            target="ratio <= 2.0",
            ok=ratio <= 2.0,
            note=f"best of {rounds} interleaved rounds: reading {read_s / count * 1e6:.1f} us/device, "
            f"re-run {rerun_s / count * 1e6:.1f} us/device (rounds: read "
            + ", ".join(f"{t:.2f}" for t in read_times)
            + " s; re-run "
            + ", ".join(f"{t:.2f}" for t in rerun_times)
            + " s)",
        ),
        Result(
            BENCH,
            f"AWS calls of the re-run over a finished ledger ({count:,} devices)",
            0.0,
            "calls",
            baseline=float(FLOOR * count),
            baseline_name=f"the same run without a ledger ({FLOOR} per device)",
            target="value == 0",
            ok=True,  # asserted in every round
        ),
    ]


# -- figure 4: ledger size and the re-run's peak memory -------------------------------------------


def _peak_rss_mb(manifest: Path, digest: str, db: Path, count: int) -> tuple[float, float]:
    """A child process re-runs ``manifest`` over ``db``: (its peak resident set size during the
    re-run, its resident size when the re-run began) in MB. Where /proc cannot reset the peak,
    the first is the child's peak over its whole life (wait4), imports included."""
    command = [sys.executable, __file__, "--rerun-child", str(manifest), digest, str(db), str(count)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not every child's
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, f"re-run child failed: {err.decode(errors='replace')[-2000:]}"
    answer = json.loads(out)
    assert answer["count"] == count
    if answer["peak_kib"] is None:
        return usage.ru_maxrss / 1024, math.nan  # KiB on Linux
    return answer["peak_kib"] / 1024, answer["start_kib"] / 1024


def _memory_kib() -> tuple[int, int] | None:
    """(resident, peak resident) of this process in KiB, from /proc (Linux); None elsewhere."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _rerun_child(argv: list[str]) -> None:
    """The child of `_peak_rss_mb`: import everything, forget the peak so far (the imports'
    own), re-run, and say the peak of the re-run itself."""
    manifest, digest, db, count = Path(argv[0]), argv[1], Path(argv[2]), int(argv[3])
    import thingpress_core.importer
    import thingpress_core.ledger
    import thingpress_core.manifests  # noqa: F401  # loaded before the peak is reset

    gc.collect()
    start = peak = None
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
        memory = _memory_kib()
        start = memory[0] if memory is not None else None
    except OSError:
        pass
    _rerun(manifest, digest, db, count)
    memory = _memory_kib()
    if start is not None and memory is not None:
        peak = memory[1]
    print(json.dumps({"count": count, "start_kib": start, "peak_kib": peak}))


def bench_footprint(
    manifests: dict[int, tuple[Path, str]], ledgers: dict[int, Path], fill_seconds: dict[int, float]
) -> list[Result]:
    small, large = sorted(manifests)
    per_device = {size: _ledger_bytes(ledgers[size]) / size for size in (small, large)}
    rss = {size: _peak_rss_mb(*manifests[size], ledgers[size], size) for size in (small, large)}
    size_ratio = per_device[large] / per_device[small]
    rss_ratio = rss[large][0] / rss[small][0]
    return [
        Result(
            BENCH,
            f"ledger bytes per device, {large:,} devices (.db + -wal after close)",
            per_device[large],
            "bytes",
            baseline=per_device[small],
            baseline_name=f"{small:,} devices",
            ratio=size_ratio,
            target="ratio <= 1.2 (about equal)",
            ok=size_ratio <= 1.2,
            note=f"written by import_all through an in-memory IoT (1 policy, 1 group, a type): "
            f"{small:,} devices in {fill_seconds[small]:.1f} s, {large:,} in {fill_seconds[large]:.1f} s",
        ),
        Result(
            BENCH,
            f"peak RSS during the re-run over a finished ledger, {large:,} devices (child process)",
            rss[large][0],
            "MB",
            baseline=rss[small][0],
            baseline_name=f"{small:,} devices",
            ratio=rss_ratio,
            target="ratio <= 1.2 (flat)",
            ok=rss_ratio <= 1.2,
            note="one child process per size; its peak resident set (VmHWM, reset once its modules "
            "were imported, read after the re-run); resident when the re-run began: "
            f"{rss[small][1]:.1f} MB ({small:,}), {rss[large][1]:.1f} MB ({large:,})",
        ),
    ]


# -- figures 2 and 3: throughput at the quotas, with and without a ledger -------------------------


def _throughput(
    count: int, scale: float, concurrency: int, *, ledger: str | None, directory: Path, tag: str
) -> tuple[Any, int, dict[str, int], float]:
    """One import at the simulated quotas (bench_importer's harness) with ``ledger`` None,
    ``"sqlite"`` or ``"dynamodb"``: (report, throttled, ledger calls, process CPU seconds)."""
    from thingpress_core.certificates.generate import generate_device_certificates
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.ledger import DynamoDBLedger, SqliteLedger
    from thingpress_core.resilience import DEFAULT_RATE_LIMITS, RateLimiter
    from thingpress_core.services import DynamoDBService, IoTService
    from thingpress_core.settings import ThingpressSettings
    from thingpress_core.testing import FaultInjector

    certs = list(generate_device_certificates(count, cn_prefix=f"tp-{tag}-"))
    with _fake_aws_environment(), _backend("moto"), contextlib.ExitStack() as stack:
        settings = ThingpressSettings(
            region=REGION, account_id=ACCOUNT, max_pool_connections=max(32, concurrency)
        )
        factory = ClientFactory(settings)
        client = factory.iot()
        create_import_resources(client)
        book: Any = None
        db_service = None
        if ledger == "sqlite":
            book = stack.enter_context(SqliteLedger(directory / f"throughput-{tag}.db"))
        elif ledger == "dynamodb":
            db_service = DynamoDBService(factory)
            book = stack.enter_context(DynamoDBLedger(TABLE, service=db_service, create=True))
            db_service.reset_stats()
        limiter = RateLimiter({name: rate * scale for name, rate in DEFAULT_RATE_LIMITS.items()})
        service = IoTService(factory, limiter=limiter)
        cpu_started = time.process_time()
        with FaultInjector(factory) as faults:
            faults.latency("iot.*", LATENCY)
            faults.quota("aws-iot-defaults", scale=scale)
            importer = CertificateImporter(service, options=_options(concurrency=concurrency), ledger=book)
            report = importer.import_all(iter(certs), input_name=f"throughput-{tag}")
            throttled = faults.count(kind="throttle")
        cpu = time.process_time() - cpu_started
        ledger_calls = dict(db_service.stats().calls) if db_service is not None else {}
    assert report.imported == count and report.failed == 0, report.summary()
    return report, throttled, ledger_calls, cpu


def bench_throughput(count: int, concurrency: int, rounds: int, directory: Path) -> list[Result]:
    scale = 1.0
    kinds = (None, "sqlite", "dynamodb")
    rates: dict[str | None, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str | None, list[float]] = {kind: [] for kind in kinds}
    throttled: dict[str | None, int] = dict.fromkeys(kinds, 0)
    dynamo_calls: dict[str, int] = {}
    for round_no in range(rounds):
        for kind in kinds:  # interleaved: none, SQLite, DynamoDB, none, SQLite, DynamoDB, ...
            report, throttles, calls, seconds = _throughput(
                count, scale, concurrency, ledger=kind, directory=directory, tag=f"{kind}-{round_no}"
            )
            rates[kind].append(report.rate_per_second)
            cpu[kind].append(seconds / count)
            throttled[kind] += throttles
            if kind == "dynamodb":
                dynamo_calls = calls
    base = rates[None]
    results = []
    for kind, label, target in (
        ("sqlite", "SQLite ledger", "ratio >= 0.97, 0 throttled"),
        ("dynamodb", "DynamoDB ledger on moto", None),
    ):
        ratios = [with_ledger / without for with_ledger, without in zip(rates[kind], base, strict=True)]
        ratio = statistics.median(ratios)
        note = (
            "rounds (with / without, certs/s): "
            + "; ".join(f"{w:.2f} / {b:.2f}" for w, b in zip(rates[kind], base, strict=True))
            + f"; process CPU per certificate {statistics.median(cpu[kind]) * 1e3:.1f} ms with, "
            f"{statistics.median(cpu[None]) * 1e3:.1f} ms without; throttled {throttled[kind]} with, "
            f"{throttled[None]} without"
        )
        if kind == "dynamodb":
            per_device = sum(dynamo_calls.values()) / count
            note += (
                f"; {per_device:.1f} DynamoDB calls per device ("
                + ", ".join(
                    f"{k.removeprefix('dynamodb.')}={v / count:g}" for k, v in sorted(dynamo_calls.items())
                )
                + ")"
            )
        results.append(
            Result(
                BENCH,
                f"throughput with the {label} ÷ without, quota scale 1 "
                f"({count:,} certs, {LATENCY * 1000:.0f} ms/call, moto, concurrency {concurrency})",
                statistics.median(rates[kind]),
                "certs/s",
                baseline=statistics.median(base),
                baseline_name="the same import without a ledger",
                ratio=ratio,
                target=target,
                ok=None if target is None else ratio >= 0.97 and throttled[kind] == 0,
                note=note,
            )
        )
    return results


# -- the run ------------------------------------------------------------------------------------


def run(quick: bool) -> list[Result]:
    small, large = (2_000, 10_000) if quick else (10_000, 100_000)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="thingpress-bench-ledger-") as tmp:
        directory = Path(tmp)
        manifests = _write_manifests(directory, (small, large))
        ledgers = {size: directory / f"ledger-{size}.db" for size in (small, large)}
        fill = {size: _fill_ledger(*manifests[size], ledgers[size], size) for size in (small, large)}
        results += bench_rerun(*manifests[large], ledgers[large], large, rounds=3 if quick else 2)
        results += bench_footprint(manifests, ledgers, fill)
        results += bench_throughput(50 if quick else 300, concurrency=8, rounds=2, directory=directory)
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rerun-child"]:
        _rerun_child(sys.argv[2:])
    else:
        for result in run(quick="--quick" in sys.argv):
            print(result)

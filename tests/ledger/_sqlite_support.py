"""Shared by the SQLite ledger tests: records to save, and a child process that holds a ledger."""

from __future__ import annotations

import datetime as _dt
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from thingpress_core.ledger import DeviceRecord, step_key

T = "123456789012/us-east-1"
T2 = "123456789012/eu-west-1"
RUN = "20261201T100000Z-aaaaaa"
RUN2 = "20261202T100000Z-bbbbbb"
T0 = _dt.datetime(2026, 12, 1, 10, 0, tzinfo=_dt.timezone.utc)
FLOOR = ("register", "thing", "principal", step_key("policy", "DevicePolicy"), step_key("group", "Fleet"))
HOLDER = Path(__file__).with_name("_sqlite_holder.py")


def cert(n: int) -> str:
    return format(n, "064x")


def at(seconds: float) -> _dt.datetime:
    return T0 + _dt.timedelta(seconds=seconds)


def imported(n: int, *, target: str = T, run_id: str = RUN, steps: tuple[str, ...] = FLOOR) -> DeviceRecord:
    """Device ``n`` as an import leaves it: registered, thing, principal, policy, group."""
    record = DeviceRecord.new(
        target=target,
        certificate_id=cert(n),
        run_id=run_id,
        thing_name=f"plant1-{n:08d}",
        source="reel-0001.7z",
        entry_index=n,
        vendor_id=f"{n:016X}",
        at=at(n),
    )
    arn = f"arn:aws:iot:{target.split('/')[1]}:{target.split('/')[0]}:cert/{cert(n)}"
    for i, key in enumerate(steps):
        extra = {"certificate_arn": arn, "certificate_status": "ACTIVE"} if key == "register" else {}
        record = record.with_step(key, run_id=run_id, made=True, at=at(n + i / 10), **extra)
    return record


class Child:
    """A Python process running ``_sqlite_holder.py``; it speaks one line at a time."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HOLDER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def line(self) -> str:
        """The child's next line (blocks until it writes one); fails with its stderr if it ended."""
        assert self.process.stdout is not None
        text = self.process.stdout.readline()
        if not text:
            self.process.wait(timeout=30)
            assert self.process.stderr is not None
            raise AssertionError(f"the child ended ({self.process.returncode}): {self.process.stderr.read()}")
        return text.strip()

    def tell(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        """Close the child's stdin and wait for it to end; its exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=30)


@contextmanager
def child(*args: str) -> Iterator[Child]:
    process = Child(*args)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()
        process.process.wait(timeout=30)
        for stream in (process.process.stdin, process.process.stdout, process.process.stderr):
            if stream is not None:
                stream.close()

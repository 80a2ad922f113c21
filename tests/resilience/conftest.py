"""Fake time for breaker and rate-limiter tests: nothing here ever sleeps for real."""

from __future__ import annotations

import threading

import pytest


class FakeClock:
    """A thread-safe monotonic clock that moves only when told to (or when "slept" on)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """A `time.sleep` stand-in: records the request and moves the clock instead."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

"""The runner every operation shares: its accounting holds for any mix of outcomes, rounds
retry only transient failures, Ctrl-C counts what finished, a broken input stops reading."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.errors import ConfigurationError, RateLimitTimeoutError, ThrottledError
from thingpress_core.operations import DeviceOutcome, RetryRounds
from thingpress_core.operations._devices import prepare
from thingpress_core.operations._runner import Done, Runner, Task

Result = str  # "changed", "unchanged", "transient", "permanent"
RESULTS = ("changed", "unchanged", "transient", "permanent")


class Scripted(Task[DeviceOutcome]):
    """A device whose n-th attempt gives ``script[n]`` (the last entry once past the end)."""

    def __init__(self, number: int, script: list[Result]) -> None:
        super().__init__(certificate_id=f"{number:064x}", thing_name=f"t{number}", index=number)
        self.script = script

    def attempt(self) -> DeviceOutcome:
        result = self.script[min(self.attempts, len(self.script)) - 1]
        if result in ("changed", "unchanged"):
            return DeviceOutcome(**self.fields(), status=result)  # type: ignore[arg-type]  # a str from the script
        if result == "transient":
            return DeviceOutcome(
                **self.failure(
                    "describe_certificate",
                    "reading it",
                    ThrottledError("slow down", service="iot", operation="DescribeCertificate"),
                )
            )
        return DeviceOutcome(
            **self.failed_fields(
                "delete_thing", "refused", error_type="X", transient=False, reason="conflict"
            )
        )


def _final(script: list[Result], rounds: int) -> tuple[Result, int]:
    """The final result of a script with ``rounds`` retry rounds, and the attempts it took."""
    for attempt in range(1, rounds + 2):
        result = script[min(attempt, len(script)) - 1]
        if result != "transient":
            return result, attempt
    return "transient", rounds + 1


def _runner(
    tasks: dict[int, Scripted], rounds: int, concurrency: int, **kwargs: object
) -> Runner[DeviceOutcome]:
    def make(item: object, position: int) -> Task[DeviceOutcome]:
        assert isinstance(item, int)
        return tasks[item]

    return Runner(
        make=make,
        concurrency=concurrency,
        retry=RetryRounds(rounds=rounds, pause=0.5),
        observers=(kwargs.get("progress"),),  # type: ignore[arg-type]  # a callback or None
        sleep=kwargs.get("sleep", lambda _: None),  # type: ignore[arg-type]  # a callable
    )


@given(
    scripts=st.lists(st.lists(st.sampled_from(RESULTS), min_size=1, max_size=4), max_size=40),
    rounds=st.integers(min_value=0, max_value=4),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_the_counts_add_up_for_any_mix_of_outcomes(
    scripts: list[list[Result]], rounds: int, concurrency: int
) -> None:
    tasks = {n: Scripted(n, script) for n, script in enumerate(scripts)}
    seen: list[DeviceOutcome] = []
    pauses: list[float] = []
    runner = _runner(tasks, rounds, concurrency, progress=seen.append, sleep=pauses.append)
    runner.run(iter(range(len(scripts))))

    finals = [_final(script, rounds) for script in scripts]
    assert runner.total == len(scripts) == len(seen)
    assert runner.changed == sum(1 for result, _ in finals if result == "changed")
    assert runner.unchanged == sum(1 for result, _ in finals if result == "unchanged")
    assert runner.failed == sum(1 for result, _ in finals if result in ("transient", "permanent"))
    assert runner.total == runner.changed + runner.unchanged + runner.failed
    assert len(runner.failures) == runner.failed
    assert sorted(o.certificate_id or "" for o in seen) == sorted(
        t.certificate_id or "" for t in tasks.values()
    )
    for task, (_, attempts) in zip(tasks.values(), finals, strict=True):
        assert task.attempts == attempts  # a transient failure goes round, nothing else does
    assert runner.retried == sum(1 for _, attempts in finals if attempts > 1)
    # under 256 waiting, every round takes all the devices still failing transiently
    assert runner.rounds == len(pauses) == max((a for _, a in finals), default=1) - 1
    assert all(p > 0 for p in pauses)


def test_the_pause_doubles_with_the_attempts_and_is_capped() -> None:
    tasks = {0: Scripted(0, ["transient"] * 9 + ["changed"])}
    pauses: list[float] = []
    runner = _runner(tasks, rounds=9, concurrency=1, sleep=pauses.append)
    runner.run([0])
    assert runner.changed == 1
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


class Refused(Task[DeviceOutcome]):
    """A device the rate limiter refuses every time: no call is made, so no try is counted."""

    def attempt(self) -> DeviceOutcome:
        refusal = RateLimitTimeoutError("no token", name="iot.DeleteThing", timeout=1.0)
        return DeviceOutcome(**self.failure("delete_thing", "deleting it", refusal))


def test_refusals_do_not_use_up_rounds_but_the_deadline_ends_them() -> None:
    task = Refused(certificate_id="0" * 64, thing_name="t", index=0)
    pauses: list[float] = []
    runner: Runner[DeviceOutcome] = Runner(
        make=lambda item, position: task,
        concurrency=1,
        retry=RetryRounds(rounds=2, pause=4.0, deadline=10.0),
        observers=(),
        sleep=pauses.append,
        clock=lambda: 0.0,  # time stands still: the pauses asked for count instead
    )
    runner.run([0])
    assert pauses == [4.0, 4.0, 2.0]  # more rounds than `rounds`, none past the deadline
    (failure,) = runner.failures
    assert (failure.reason, failure.transient, failure.attempts) == ("rate_limited", True, 0)


def test_ctrl_c_from_a_callback_counts_what_finished_and_lists_the_rest() -> None:
    tasks = {n: Scripted(n, ["transient", "changed"]) for n in range(30)}
    count = [0]

    def stop(outcome: DeviceOutcome) -> None:
        count[0] += 1
        if count[0] == 1:
            raise KeyboardInterrupt

    runner = _runner(tasks, rounds=3, concurrency=2, progress=stop)
    with pytest.raises(KeyboardInterrupt):
        runner.run(iter(range(30)))
    counted = runner.total
    unfinished = set(runner.unfinished)
    assert counted >= 1
    # every item was read before the first round (each first failed transiently), so each is
    # either counted or unfinished, never both, never neither
    assert counted + len(unfinished) == 30
    assert not unfinished & {o.certificate_id for o in runner.failures}
    assert runner.total == runner.changed + runner.unchanged + runner.failed


def test_an_input_that_breaks_is_reported_and_reading_stops() -> None:
    def devices() -> Iterator[object]:
        yield from range(3)
        raise OSError("disk gone")

    tasks = {n: Scripted(n, ["unchanged"]) for n in range(3)}

    def make(item: object, position: int) -> Task[DeviceOutcome]:
        if isinstance(item, int):
            return tasks[item]
        ref = prepare(item, position)
        assert isinstance(ref, dict)
        return Done(DeviceOutcome(**ref))

    runner: Runner[DeviceOutcome] = Runner(
        make=make, concurrency=2, retry=RetryRounds(), observers=(), sleep=lambda _: None
    )
    runner.run(devices())
    assert (runner.total, runner.unchanged, runner.failed) == (4, 3, 1)
    (broken,) = runner.failures
    assert (broken.failed_step, broken.index, broken.error_type) == ("input", 3, "OSError")
    assert broken.error is not None
    assert "disk gone" in broken.error


def test_concurrency_out_of_range_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        Runner(
            make=lambda item, position: Done(DeviceOutcome(certificate_id=None, status="unchanged")),
            concurrency=0,
            retry=RetryRounds(),
            observers=(),
            sleep=lambda _: None,
        )


def test_importing_the_operations_loads_no_boto3() -> None:
    code = "import sys, thingpress_core.operations; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

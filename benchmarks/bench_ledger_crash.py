"""The import crash test at scale: a CLI import of 2,000 devices (300 with ``--quick``)
killed with SIGKILL 10 times (3) at random points, re-run after each kill, then run to the end.

The machinery is the test suite's (`tests._support.crash`): moto's server in this process
behind a layer that names every request, and a kill after the K-th mutating request of a run
(K drawn from the seed), sometimes with the network held still. Rate limits are lifted (the
subject is the ledger, not AWS's quotas); 8 worker threads.

1. ``repeated mutating calls per kill``: mutating requests beyond one per step, over the
   kills, against the concurrency (each thread saves its step before its next call, so at
   most one step per thread is in flight). Target: ratio <= 1.
2. ``largest in flight at one kill``: the most steps one kill left unrecorded. Target: ratio <= 1.
3. ``mutating calls per device`` over the whole crash and resume, against the floor of 5.
   Target: at most 5 plus the kills' share, ``5 + kills * concurrency / devices``.
4. ``IoT calls per device`` (reads too: each run's preflight, the check after a 409 on a
   registration whose answer a kill lost) against the floor, for the record.
5. ``re-run calls for devices already done``: requests the last run made for devices the
   ledger showed done after the last kill. Target: 0.
6. ``devices wrong in AWS``: devices not registered exactly once, on exactly their own thing,
   with the policy and the group. Target: 0.
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests._support

from tests._support.crash import Campaign, run_campaign

from _harness import Result

BENCH = "ledger_crash"
CONCURRENCY = 8
SEED = 14


def _wrong_devices(campaign: Campaign) -> int:
    aws = campaign.aws
    wrong = 0
    for device in campaign.devices:
        ok = (
            aws.certificates.get(device.certificate_id) == 1
            and aws.thing_principals.get(device.thing_name) == (device.certificate_id,)
            and all(aws.policy_targets[p][device.certificate_id] == 1 for p in campaign.policies)
            and all(aws.group_things[g][device.thing_name] == 1 for g in campaign.groups)
        )
        wrong += not ok
    wrong += len(set(aws.thing_principals) - {d.thing_name for d in campaign.devices})  # extra things
    return wrong


def _rerun_calls(campaign: Campaign) -> int:
    done = campaign.kills[-1].complete
    return sum(campaign.device_of(r) in done for r in campaign.requests_of(campaign.runs[-1]))


def run(quick: bool) -> list[Result]:
    devices, kills = (300, 3) if quick else (2_000, 10)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-crash-") as tmp:
        campaign = run_campaign(Path(tmp), devices=devices, kills=kills, seed=SEED, concurrency=CONCURRENCY)
    if campaign.final_code != 0:
        raise RuntimeError(f"the last run failed (exit {campaign.final_code}):\n{campaign.final_output}")
    floor = len(campaign.policies) + len(campaign.groups) + 3
    mutations = campaign.mutations()
    repeats = sum(mutations.values()) - len(mutations)
    widest = max(len(k.inflight) for k in campaign.kills)
    iot_calls = sum(1 for r in campaign.requests if r.operation.startswith("iot."))
    per_device = sum(mutations.values()) / devices
    allowed = floor + kills * CONCURRENCY / devices
    modes = collections.Counter(k.mode for k in campaign.kills)
    plan = ", ".join(f"{k.mode}@{k.after}" for k in campaign.kills)
    note = f"{devices} devices, {kills} kills ({dict(modes)}), seed {SEED}"
    rerun = _rerun_calls(campaign)
    wrong = _wrong_devices(campaign)
    return [
        Result(
            BENCH,
            "repeated mutating calls per kill",
            repeats / kills,
            "calls",
            baseline=CONCURRENCY,
            baseline_name="concurrency",
            target="ratio <= 1",
            ok=repeats / kills <= CONCURRENCY,
            note=f"{note}; kills at (mode@K): {plan}",
        ),
        Result(
            BENCH,
            "largest in flight at one kill",
            widest,
            "steps",
            baseline=CONCURRENCY,
            baseline_name="concurrency",
            target="ratio <= 1",
            ok=widest <= CONCURRENCY,
        ),
        Result(
            BENCH,
            "mutating calls per device (crash and resume)",
            per_device,
            "calls",
            baseline=floor,
            baseline_name="floor",
            target=f"<= {allowed:.3f} (floor + kills x concurrency / devices)",
            ok=per_device <= allowed,
            note=f"{sum(mutations.values())} mutating requests in {len(campaign.runs)} runs, "
            f"{campaign.seconds:.1f} s",
        ),
        Result(
            BENCH,
            "IoT calls per device (crash and resume)",
            iot_calls / devices,
            "calls",
            baseline=floor,
            baseline_name="floor",
            note="reads too: each run's preflight, ListPrincipalThings after a 409",
        ),
        Result(
            BENCH,
            "re-run calls for devices already done",
            rerun,
            "calls",
            target="== 0",
            ok=rerun == 0,
            note=f"{len(campaign.kills[-1].complete)} devices done before the last run; "
            f"it made {sum(1 for r in campaign.requests_of(campaign.runs[-1]) if r.mutating)} mutating calls",
        ),
        Result(BENCH, "devices wrong in AWS", wrong, "devices", target="== 0", ok=wrong == 0),
    ]


if __name__ == "__main__":
    for result in run("--quick" in sys.argv):
        print(result)

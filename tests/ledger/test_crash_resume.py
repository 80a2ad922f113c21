"""Issue 14: a CLI import killed with SIGKILL at random points and run again finishes with
every device imported once, no step repeated but the ones in flight, and counts that add up.

One campaign (module fixture): 200 generated certificates, a SQLite ledger, concurrency 4-8
drawn from the seed, four kills each after the K-th mutating request the stand-in saw (K
drawn from the seed; one kill races on, the others hold the network still with the K-th
request carried out or not), a re-run after each kill and a last run to the end. The
stand-in (`tests._support.crash.IoTStandIn`) outlives the importer and names every request.
``THINGPRESS_CRASH_SEED`` replays another seed.

In flight at a kill: a step the run requested that the ledger does not hold after the kill.
The bound: repeated mutating requests = the sum over kills of the steps in flight
<= kills * concurrency * 1. Each of the ``concurrency`` importer threads saves a step, durably
(group commit returns once committed), before its next call, so it has at most one step in
flight; the factor is the mutating requests one step can cost: 1 here, since the stand-in
never fails (no botocore retry) and no foreign thing is adopted (adopting one costs
CreateThing then UpdateThing: 2; a step whose request failed and was retried by botocore
costs up to ``total_max_attempts``).

Counts when runs are killed: a killed run writes no report (its ledger run stays
"running"), so only the last run reports. Its ``already_present`` are exactly the devices the
ledger showed done (which cost no call); everything else, a device whose registration a
killed run carried out with the answer lost included, it reports imported (the run reads the
start of the oldest import that never ended, and a certificate AWS holds since then counts as
made by the ledger's runs).
Across runs the ledger credits each run with exactly the registrations it confirmed.
"""

from __future__ import annotations

import collections
import os

import pytest
from tests._support.crash import (
    KILL_MODES,
    CallKey,
    Campaign,
    Request,
    device_steps,
    run_campaign,
    step_call,
    subject,
)

from thingpress_core.importer import OWNER_ATTRIBUTE

SEED = int(os.environ.get("THINGPRESS_CRASH_SEED", "1414"))
DEVICES = 200
KILLS = 4
FLOOR = frozenset(
    {
        "iot.RegisterCertificateWithoutCA",
        "iot.CreateThing",
        "iot.AttachThingPrincipal",
        "iot.AttachPolicy",
        "iot.AddThingToThingGroup",
    }
)
REGISTER = "iot.RegisterCertificateWithoutCA"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    return run_campaign(tmp_path_factory.mktemp("crash"), devices=DEVICES, kills=KILLS, seed=SEED)


def _expected(campaign: Campaign) -> dict[CallKey, str]:
    """Every step of every device as its request, to the device's certificate id."""
    steps = device_steps(campaign.policies, campaign.groups)
    return {
        step_call(step, certificate_id=d.certificate_id, thing_name=d.thing_name): d.certificate_id
        for d in campaign.devices
        for step in steps
    }


def _lost_registrations(campaign: Campaign) -> set[str]:
    """Devices whose registration an earlier run carried out but the last kill's ledger lacks."""
    final = campaign.runs[-1]
    last = campaign.kills[-1].recorded
    carried = {
        r.subject for r in campaign.requests if r.operation == REGISTER and r.carried_out and r.run != final
    }
    return {
        d.certificate_id
        for d in campaign.devices
        if subject(certificateId=d.certificate_id) in carried
        and (REGISTER, subject(certificateId=d.certificate_id)) not in last
    }


def test_the_campaign_killed_as_planned_and_the_ledger_opened_cleanly_after_every_kill(
    campaign: Campaign,
) -> None:
    assert len(campaign.kills) == KILLS
    assert {k.mode for k in campaign.kills} == set(KILL_MODES)
    assert 4 <= campaign.concurrency <= 8
    for kill in campaign.kills:
        assert kill.opened, kill.run
        assert kill.integrity == "ok", kill.run
        assert len(kill.run_ids) == 1, kill.run  # the killed run had begun in the ledger
        assert kill.recorded_before <= kill.recorded, f"{kill.run}: a step the ledger held is gone"
    assert campaign.final_code == 0, campaign.final_output


def test_every_device_is_registered_once_on_its_own_thing_with_its_policy_and_group(
    campaign: Campaign,
) -> None:
    aws = campaign.aws
    ids = [d.certificate_id for d in campaign.devices]
    names = [d.thing_name for d in campaign.devices]
    assert aws.certificates == dict.fromkeys(ids, 1)
    assert aws.thing_principals == {d.thing_name: (d.certificate_id,) for d in campaign.devices}
    assert {n: a.get(OWNER_ATTRIBUTE) for n, a in aws.thing_attributes.items()} == {
        d.thing_name: d.certificate_id for d in campaign.devices
    }
    for policy in campaign.policies:
        assert aws.policy_targets[policy] == collections.Counter(ids)
    for group in campaign.groups:
        assert aws.group_things[group] == collections.Counter(names)
    # AWS answers a second registration of a certificate with 409: exactly one was carried out
    created = collections.Counter(
        r.subject for r in campaign.requests if r.operation == REGISTER and r.carried_out
    )
    assert created == collections.Counter(subject(certificateId=i) for i in ids)
    # the floor's operations only: no thing updated, nothing detached or deleted
    assert {r.operation for r in campaign.requests if r.mutating} == FLOOR


def test_no_step_is_repeated_except_the_ones_in_flight_at_a_kill(campaign: Campaign) -> None:
    expected = _expected(campaign)
    mutations = campaign.mutations()
    assert set(mutations) == set(expected), "a mutating request no device step accounts for"
    befores = [k.recorded_before for k in campaign.kills] + [campaign.kills[-1].recorded]
    for run, before in zip(campaign.runs, befores, strict=True):
        sent = [r.key for r in campaign.requests_of(run) if r.mutating]
        twice = [key for key, n in collections.Counter(sent).items() if n > 1]
        assert not twice, f"{run} sent one step twice: {twice[:3]}"
        again = [key for key in sent if key in before]
        assert not again, f"{run} repeated {len(again)} step(s) the ledger held: {again[:3]}"
    for kill in campaign.kills:
        assert len(kill.inflight) <= campaign.concurrency, (kill.run, sorted(kill.inflight))
        unanswered = {r.key for r in campaign.requests_of(kill.run) if r.mutating and r.fate != "answered"}
        assert unanswered <= kill.inflight, f"{kill.run}: the ledger holds a step AWS never answered"
        if kill.mode != "race":
            assert unanswered, f"{kill.run}: the held request is not in the record"
    in_flight = collections.Counter(key for kill in campaign.kills for key in kill.inflight)
    wrong = {key: (n, in_flight[key]) for key, n in mutations.items() if n != 1 + in_flight[key]}
    assert not wrong, f"(requests, kills with the step in flight) per step: {list(wrong.items())[:3]}"
    repeats = sum(mutations.values()) - len(expected)
    assert repeats == sum(len(k.inflight) for k in campaign.kills)
    assert repeats <= KILLS * campaign.concurrency


def test_the_ledger_shows_every_step_of_every_device_marked_by_the_run_that_made_its_call(
    campaign: Campaign,
) -> None:
    steps = set(device_steps(campaign.policies, campaign.groups))
    assert set(campaign.records) == {d.certificate_id for d in campaign.devices}
    run_ids = {k.run: k.run_ids[0] for k in campaign.kills} | {
        campaign.runs[-1]: campaign.final_report["run_id"]
    }
    last_request: dict[CallKey, Request] = {}
    for request in campaign.requests:
        if request.mutating:
            last_request[request.key] = request
    for device in campaign.devices:
        record = campaign.records[device.certificate_id]
        assert set(record.steps) == steps, device
        assert record.thing_name == device.thing_name
        assert record.certificate_arn is not None
        assert record.certificate_arn.endswith("/" + device.certificate_id)
        assert record.last_error is None
        for step, mark in record.steps.items():
            key = step_call(step, certificate_id=device.certificate_id, thing_name=device.thing_name)
            assert mark.run_id == run_ids[last_request[key].run], (device, step)
    statuses = {r.run_id: r.status for r in campaign.ledger_runs}
    assert statuses == {run_ids[run]: "running" for run in campaign.runs[:-1]} | {
        campaign.final_report["run_id"]: "finished"
    }  # a killed run ends without a word: it stays "running"


def test_the_last_run_counts_add_up_and_costs_nothing_for_devices_already_done(campaign: Campaign) -> None:
    report = campaign.final_report
    done = campaign.kills[-1].complete
    lost = _lost_registrations(campaign)
    assert (report["total"], report["failed"], report["skipped"]) == (DEVICES, 0, 0)
    assert report["imported"] + report["already_present"] == DEVICES
    # done devices cost no call and are already present; every other device, one whose
    # registration a killed run carried out without recording it included, is imported
    assert report["already_present"] == len(done), (len(lost), report)
    final = campaign.requests_of(campaign.runs[-1])
    touched = {campaign.device_of(r) for r in final} - {None}
    assert not touched & done, "the last run called AWS for a device the ledger showed done"
    assert touched == {d.certificate_id for d in campaign.devices} - done
    # the report's call counts are what the stand-in saw
    seen = collections.Counter(r.operation for r in final if r.operation.startswith("iot."))
    assert report["calls"] == dict(seen)
    # the killed runs left no report; the ledger credits each run with the registrations it
    # confirmed, which add up to the fleet
    registered_by = collections.Counter(r.steps["register"].run_id for r in campaign.records.values())
    for kill in campaign.kills:
        added = {key for key in kill.recorded - kill.recorded_before if key[0] == REGISTER}
        assert registered_by[kill.run_ids[0]] == len(added), kill.run
    held = sum(1 for key in campaign.kills[-1].recorded if key[0] == REGISTER)
    assert registered_by[report["run_id"]] == DEVICES - held
    assert sum(registered_by.values()) == DEVICES


@pytest.fixture(scope="module")
def lost_answer(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    """12 devices; the first run killed with its first request (a registration) carried out
    and its answer lost, every later request not carried out; then a run to the end."""
    return run_campaign(
        tmp_path_factory.mktemp("lost"), devices=12, kills=1, seed=SEED, concurrency=4, plan=[("lost", 1)]
    )


def test_a_registration_whose_answer_a_kill_lost_is_finished_once(lost_answer: Campaign) -> None:
    (kill,) = lost_answer.kills
    lost = [r for r in lost_answer.requests_of(kill.run) if r.fate == "lost"]
    assert [(r.operation, r.carried_out) for r in lost] == [(REGISTER, True)]
    assert not any(
        r.carried_out for r in lost_answer.requests_of(kill.run) if r.mutating and r.fate != "lost"
    )
    assert kill.recorded == frozenset()
    assert lost_answer.final_code == 0, lost_answer.final_output
    report = lost_answer.final_report
    assert report["imported"] + report["already_present"] == 12
    assert lost_answer.mutations()[lost[0].key] == 2  # the lost one, then the 409 that finds it
    (device,) = [d for d in lost_answer.devices if subject(certificateId=d.certificate_id) == lost[0].subject]
    assert lost_answer.aws.thing_principals[device.thing_name] == (device.certificate_id,)
    assert set(lost_answer.records[device.certificate_id].steps) == set(
        device_steps(("DevicePolicy",), ("Fleet",))
    )


def test_a_registration_whose_answer_a_kill_lost_counts_as_made_by_the_ledger_runs(
    lost_answer: Campaign,
) -> None:
    # every certificate was made by this ledger's runs and none was there before: the only
    # report, and the ledger's made marks (which a rollback of the run would follow), say so
    assert (lost_answer.final_report["imported"], lost_answer.final_report["already_present"]) == (12, 0)
    assert all(r.steps["register"].made for r in lost_answer.records.values())

"""`Journal`: the importer's side of the ledger for one run.

Before a device's first call it reads the device's record: a device every wanted step of
which was confirmed is done (``already_present``, no AWS call); a thing name another
certificate holds is a collision (no AWS call); otherwise the work resumes at the first step
not confirmed. After each call AWS confirmed, it saves the step, so a crash costs at most
the calls in flight, which are made again (idempotently) by the next run.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from thingpress_core.importer._models import ImportOptions, ImportOutcome, OutcomeStatus
from thingpress_core.importer._refusal import Refusal, collision
from thingpress_core.ledger import DeviceRecord, Ledger, SqliteLedger, step_key

if TYPE_CHECKING:
    from thingpress_core.importer._work import Work

__all__ = ["Journal", "lost_since_for"]


def lost_since_for(ledger: Ledger, target: str) -> _dt.datetime | None:
    """The start of the oldest import of ``target`` that never ended (still ``running``:
    killed, or still going elsewhere), or None."""
    runs = ledger.runs(target=target)
    starts = [r.started_at for r in runs if r.kind == "import" and r.status == "running"]
    return min(starts, default=None)


class Journal:
    """One run's view of a ledger: its target and run id, and the reads and writes of a run."""

    __slots__ = ("ledger", "local", "lost_since", "run_id", "target")

    def __init__(
        self, ledger: Ledger, *, target: str, run_id: str, lost_since: _dt.datetime | None = None
    ) -> None:
        self.ledger = ledger
        self.target = target
        self.run_id = run_id
        # When an earlier import of this target never ended (killed), the start of the oldest
        # such run: a registration it sent may have been carried out with its answer lost, so
        # a certificate the ledger does not know and AWS holds since then counts as made by
        # this ledger's runs, not as found (`lost_since_for`).
        self.lost_since = lost_since
        # A SQLite ledger answers a read in microseconds from the page cache: the scheduling
        # thread reads it itself, and a device it shows done never waits for a worker thread
        # (a network ledger, DynamoDB, is read on the workers, in parallel).
        self.local = isinstance(ledger, SqliteLedger)

    def consult(self, work: Work, name: str, options: ImportOptions) -> ImportOutcome | None:
        """Read the device's record before its first call: ``already_present`` when every
        wanted step is confirmed, else None with the work set to resume at the first step not
        confirmed. Raises the importer's `Refusal` when the ledger gives the thing name to
        another certificate."""
        certificate_id = work.certificate_id
        assert certificate_id is not None
        ledger = self.ledger
        if isinstance(ledger, SqliteLedger):  # both answers in one read
            record, owner = ledger.lookup(self.target, certificate_id, name)
            owner_read = True
        else:
            record, owner, owner_read = ledger.device(self.target, certificate_id), None, False
        work.record = record
        if record is not None:
            registered = record.steps.get("register")
            work.ours = registered is not None and registered.made
        elif self.lost_since is not None and work.register_sent is None:
            work.register_sent = self.lost_since
        if options.recheck:
            return None  # every call is made again; what AWS lacks is repaired and recorded
        if not owner_read:
            owner = ledger.thing_owner(self.target, name)
        if owner is not None and owner != certificate_id:
            raise collision(name, owner, source="the ledger")
        if record is None:
            return None
        elsewhere = record.thing_name
        if (
            elsewhere is not None
            and elsewhere != name
            and record.done("principal")
            and not options.allow_multiple_things
        ):
            raise Refusal(
                f"it is attached to thing {elsewhere!r} already (says the ledger); not attaching "
                f"it to a second thing {name!r} (allow_multiple_things, or "
                "--allow-multiple-things, attaches it anyway)",
                reason="certificate_on_other_thing",
                other_things=(elsewhere,),
            )
        if record.complete_for(
            thing_name=name,
            policies=options.certificate_policies,  # a group policy is no device step
            thing_groups=options.thing_groups,
            thing_type=options.thing_type,
            status=options.status,
        ):
            return ImportOutcome(
                certificate_id=certificate_id,
                thing_name=name,
                status=OutcomeStatus.ALREADY_PRESENT,
                calls=0,
                attempts=work.attempts,
                index=work.index,
            )
        # resume: what AWS confirmed for this device (and this name and type) is not asked again
        if record.done("register") and record.certificate_arn:
            work.certificate_arn = record.certificate_arn
        if record.thing_name == name:
            work.thing_done = record.done("thing") and record.thing_type == options.thing_type
            work.principal_done = record.done("principal")
            work.groups_done.update(g for g in record.groups() if g in options.thing_groups)
        work.policies_done.update(p for p in record.policies() if p in options.policies)
        return None

    def confirm(self, work: Work, key: str, *, found: bool = False, **fields: Any) -> None:
        """Save step ``key`` as confirmed by AWS. The run made it unless ``found`` (a resource
        that was there before) or the device's certificate was registered before this ledger
        knew it."""
        record = work.record
        if record is None:
            record = self._new(work)
        made = (work.registered or work.ours) and not found
        record = record.with_step(key, run_id=self.run_id, made=made, **fields)
        self.ledger.save(record)
        work.record = record

    def register(self, work: Work, *, arn: str, status: str, name: str) -> None:
        self.confirm(work, "register", certificate_arn=arn, certificate_status=status, thing_name=name)

    def policy(self, work: Work, policy: str) -> None:
        self.confirm(work, step_key("policy", policy))

    def group(self, work: Work, group: str) -> None:
        self.confirm(work, step_key("group", group))

    def failed(self, work: Work, step: str, error: str) -> None:
        """Remember the last error of a device (one line, never a certificate body)."""
        if work.certificate_id is None:
            return
        record = work.record or self._new(work)
        record = record.with_error(step, error, run_id=self.run_id)
        self.ledger.save(record)
        work.record = record

    def _new(self, work: Work) -> DeviceRecord:
        assert work.certificate_id is not None
        return DeviceRecord.new(
            target=self.target,
            certificate_id=work.certificate_id,
            run_id=self.run_id,
            thing_name=work.thing_name,
            source=work.source,
            entry_index=work.index,
            vendor_id=work.vendor_id,
        )

"""Judging a settled scenario by its witnesses, and the table of what each fault did.

Each scenario's row is printed, kept for the end-of-run summary, and written (all rows so far)
as JSON to ``$SMSD_FAULTS_REPORT`` when that is set, so docs/reliability.md can be made from a run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dispatcher.models import MessageState
from tests.faults.stack import LIVE, FaultStack, Submitted

#: rows of every scenario judged in this run, in order
RESULTS: list[Outcome] = []
COLUMNS = ("scenario", "fault", "recipients", "lost", "sent_twice", "unknown", "unknown_bound", "worker_restarts",
           "next_job_served")  # fmt: skip


@dataclass
class Outcome:
    """What one fault scenario left behind, once settled."""

    scenario: str
    fault: str
    recipients: int  #: recipients submitted
    lost: int  #: submitted but neither in a final state nor refused with a stored reason
    sent_twice: int  #: phones the vendors got more than once whose row is not unknown
    unknown: int
    unknown_bound: int  #: rows in flight at the fault: the most that may end unknown
    unknown_outside: int  #: unknown rows that were not in flight at the fault
    worker_restarts: int  #: times the worker exited on its own and was started again
    next_job_served: bool
    jobs_not_stored: int = 0
    #: recipients of jobs refused at the door: the job stored rejected with its reason, no rows
    refused: int = 0
    #: the reasons those jobs were stored with
    refused_reasons: list[str] = field(default_factory=list)
    #: of those, jobs whose message Redis still holds (back after the visibility timeout)
    jobs_held_by_broker: int = 0
    clock_moves: int = 0
    states: dict[str, int] = field(default_factory=dict)
    notes: str = ""

    def table(self) -> str:
        """The row as a small two-column table."""
        pairs = [(name, getattr(self, name)) for name in COLUMNS[1:]]
        pairs += [("unknown not in flight", self.unknown_outside), ("jobs not stored", self.jobs_not_stored),
                  ("refused at the door", self.refused), ("refusal reasons", self.refused_reasons),
                  ("of which held by the broker", self.jobs_held_by_broker),
                  ("clock moves", self.clock_moves), ("final states", self.states)]  # fmt: skip
        if self.notes:
            pairs.append(("notes", self.notes))
        width = max(len(k) for k, _ in pairs)
        lines = [f"== {self.scenario} =="] + [f"  {k:<{width}}  {v}" for k, v in pairs]
        return "\n".join(lines)


def judge(
    stack: FaultStack,
    scenario: str,
    fault: str,
    submitted: Submitted,
    in_flight: set[int] | None,
    restarts_before: int,
    moves_before: int,
    served: bool,
    notes: str = "",
) -> Outcome:
    """Compare the database with the vendors' ledger for one scenario's recipients."""
    rows = stack.rows(submitted.jobs)
    states = Counter(r.state for r in rows)
    final = sum(n for s, n in states.items() if s not in LIVE)
    state_of = {r.address: r.state for r in rows}
    with stack.world.ledger.lock:
        sends = {p: stack.world.ledger.sends[p] for p in submitted.phones}
    twice = [p for p, n in sends.items() if n > 1 and state_of.get(p) != MessageState.UNKNOWN.value]
    unknown = {r.id for r in rows if r.state == MessageState.UNKNOWN.value}
    scenario_ids = {r.id for r in rows}
    bound = (in_flight or set()) & scenario_ids
    missing = set(submitted.jobs) - stack.jobs_stored(submitted.jobs)
    refused = stack.jobs_refused(submitted.jobs)
    refused_count = sum(submitted.jobs[job] for job in refused)
    outcome = Outcome(
        scenario=scenario,
        fault=fault,
        recipients=sum(submitted.jobs.values()),
        lost=sum(submitted.jobs.values()) - final - refused_count,
        sent_twice=len(twice),
        unknown=len(unknown),
        unknown_bound=len(bound),
        unknown_outside=len(unknown - bound),
        worker_restarts=stack.restarts() - restarts_before,
        next_job_served=served,
        jobs_not_stored=len(missing),
        refused=refused_count,
        refused_reasons=sorted(set(refused.values())),
        jobs_held_by_broker=len(stack.in_broker(missing)),
        clock_moves=stack.clock_moves - moves_before,
        states=dict(sorted(states.items())),
        notes=notes,
    )
    if stack.waited_for_lock:
        waited = "The sweep lock of a killed process was waited out (it times out after 30 s)."
        outcome.notes = f"{outcome.notes} {waited}".strip()
        stack.waited_for_lock = False
    RESULTS.append(outcome)
    print("\n" + outcome.table())
    _write_json()
    return outcome


def _write_json() -> None:
    target = os.environ.get("SMSD_FAULTS_REPORT")
    if target:
        Path(target).write_text(json.dumps([asdict(r) for r in RESULTS], indent=2) + "\n")


def summary() -> str:
    """Every scenario of this run, one line each."""
    header = ["scenario", "recipients", "lost", "refused", "twice", "unknown", "bound", "restarts", "next job"]
    body = [[r.scenario, r.recipients, r.lost, r.refused, r.sent_twice, r.unknown, r.unknown_bound,
             r.worker_restarts, "yes" if r.next_job_served else "NO"] for r in RESULTS]  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header, *body]]
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The table of docs/reliability.md, from the JSON a run wrote to ``$SMSD_FAULTS_REPORT``."""
    head = ["fault injected", "recipients", "lost", "refused with a stored reason", "sent twice (not unknown)",
            "unknown", "in flight", "worker restarts", "next job served"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        served = "yes" if r["next_job_served"] else "**no**"
        lines.append(f"| {r['fault']} | {r['recipients']} | {r['lost']} | {r.get('refused', 0)} | "
                     f"{r['sent_twice']} | {r['unknown']} | {r['unknown_bound']} | {r['worker_restarts']} | "
                     f"{served} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())), end="")

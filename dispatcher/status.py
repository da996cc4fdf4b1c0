"""What an operator asks of a job: its counts by state, when the waiting ones go, and why rows failed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from dispatcher.models import Job, Message, MessageState


def job_status(engine: Engine, job_id: str) -> dict[str, Any] | None:
    """Return the job's state, counts per message state, next release and top reasons."""
    with engine.connect() as conn:
        job = conn.execute(select(Job).where(Job.id == job_id)).first()
        if job is None:
            return None
        counts = dict(
            conn.execute(
                select(Message.state, func.count()).where(Message.job_id == job_id).group_by(Message.state)
            ).all()
        )
        next_release = conn.execute(
            select(func.min(Message.not_before)).where(
                Message.job_id == job_id, Message.state == MessageState.PENDING.value
            )
        ).scalar()
        reasons = conn.execute(
            select(Message.state, Message.reason, func.count().label("n"))
            .where(Message.job_id == job_id, Message.reason.is_not(None))
            .group_by(Message.state, Message.reason)
            .order_by(func.count().desc())
            .limit(5)
        ).all()
    return {
        "job": job.id,
        "account": job.account,
        "state": job.state,
        "reason": job.reason,
        "priority": job.priority,
        "recipients": job.recipients,
        "created_at": job.created_at.isoformat(),
        "counts": {state.value: counts.get(state.value, 0) for state in MessageState},
        "next_release": next_release.isoformat() if next_release else None,
        "top_reasons": [{"state": r.state, "reason": r.reason, "count": r.n} for r in reasons],
    }


def format_status(status: dict[str, Any]) -> str:
    """Render a job status for a terminal."""
    lines = [
        f"job       {status['job']}",
        f"account   {status['account']}",
        f"state     {status['state']}" + (f" ({status['reason']})" if status["reason"] else ""),
        f"recipients {status['recipients']}",
    ]
    counts = {k: v for k, v in status["counts"].items() if v}
    width = max((len(k) for k in counts), default=0)
    lines += [f"  {state:<{width}}  {count:>8}" for state, count in counts.items()]
    if status["next_release"]:
        lines.append(f"next release  {status['next_release']}")
    for reason in status["top_reasons"]:
        lines.append(f"  {reason['count']:>8} {reason['state']}: {reason['reason']}")
    return "\n".join(lines)

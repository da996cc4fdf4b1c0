"""Routing as configured in celeryconfig: one copy of each task, on its queue, OTP read first."""

from __future__ import annotations

from celery import Celery

from tests.conftest import REDIS_URL


def app_on_test_redis() -> Celery:
    app = Celery("routing-test")
    app.config_from_object("celeryconfig")
    app.conf.broker_url = REDIS_URL
    return app


def test_each_task_lands_once_on_its_own_queue(redis_client) -> None:  # type: ignore[no-untyped-def]
    # Given the project's Celery configuration
    app = app_on_test_redis()
    # When one task of each kind is published
    app.send_task("dispatcher.submit", args=[{}])
    app.send_task("dispatcher.send_batch", args=[1], priority=6)
    app.send_task("dispatcher.release_due")
    # Then each queue holds exactly its own one message (no copy on the other queues)
    lengths = {
        key.decode(): redis_client.llen(key) for key in redis_client.keys("*") if redis_client.type(key) == b"list"
    }
    assert lengths == {"jobs": 1, "send:6": 1, "poll": 1}
    # And a producer publishing by exchange "jobs" and key "jobs" reaches the jobs queue alone
    bindings = redis_client.smembers("_kombu.binding.jobs")
    assert [b.split(b":")[-1] for b in bindings] == [b"jobs"]  # key:pattern:queue


def test_otp_batches_sit_where_the_worker_reads_first(redis_client) -> None:  # type: ignore[no-untyped-def]
    from tasks.dispatch import PRIORITY

    app = app_on_test_redis()
    app.send_task("dispatcher.send_batch", args=[1], priority=PRIORITY["bulk"])
    app.send_task("dispatcher.send_batch", args=[2], priority=PRIORITY["otp"])
    # kombu's Redis consumer pops "send" (priority 0) before "send:6" (priority 6)
    assert redis_client.llen("send") == 1 and redis_client.llen("send:6") == 1
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        order = [channel._q_for_pri("send", p) for p in channel.priority_steps]
    assert order.index("send") < order.index("send:6")

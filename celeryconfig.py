"""Every Celery setting of smsdispatch, read by ``tasks.app``.

Delivery: acks late, rejected back to the queue when a worker process dies, one message
prefetched at a time, and a Redis visibility timeout well above the task time limit and the
longest countdown (``DISPATCHER_MAX_COUNTDOWN``); longer waits live in the database.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from dispatcher.config import Settings

_settings = Settings()

broker_url = _settings.redis_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout,
    # Priority 0 (OTP) is read before 6 (bulk) on the same queue.
    "priority_steps": list(range(10)),
    "sep": ":",
}
task_ignore_result = True
result_backend = None

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_soft_time_limit = _settings.soft_time_limit
task_time_limit = task_soft_time_limit + 60

# Flower sees queued, started and finished tasks.
worker_send_task_events = True
task_send_sent_event = True

# Each queue has its own exchange and routing key. Left to defaults, Celery binds all three to
# the "jobs" exchange under the key "jobs"; Celery's own publishes still reach one queue, but a
# producer in another language publishing by exchange and key would put a job on all three.
task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("jobs", "send", "poll")
)
task_default_queue = "jobs"
task_default_exchange = "jobs"
task_default_routing_key = "jobs"
task_routes = {
    "dispatcher.submit": {"queue": "jobs"},
    "dispatcher.send_batch": {"queue": "send"},
    "dispatcher.release_due": {"queue": "poll"},
    "dispatcher.check_balance": {"queue": "poll"},
    "dispatcher.poll": {"queue": "poll"},
}

beat_schedule = {
    "release-due": {
        "task": "dispatcher.release_due",
        "schedule": _settings.sweep_seconds,
        "options": {"queue": "poll", "expires": max(1.0, _settings.sweep_seconds * 2)},
    },
    "poll": {
        "task": "dispatcher.poll",
        "schedule": _settings.poll_seconds,
        "options": {"queue": "poll", "expires": _settings.poll_seconds},
    },
    "check-balance": {
        "task": "dispatcher.check_balance",
        "schedule": _settings.balance_seconds,
        "options": {"queue": "poll", "expires": _settings.balance_seconds},
    },
}

assert _settings.send_budget < task_soft_time_limit, "DISPATCHER_SEND_BUDGET must be below the soft time limit"
assert _settings.visibility_timeout > max(task_time_limit, _settings.max_countdown) * 2, (
    "DISPATCHER_VISIBILITY_TIMEOUT must be well above the task time limit and the longest countdown"
)

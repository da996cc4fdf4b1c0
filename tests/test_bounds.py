"""What the worker's main process lets through to a pool process: bounded bodies and headers."""

from __future__ import annotations

import json

import pytest
from celery.exceptions import InvalidTaskError

from tasks.app import UNREADABLE, bounded_headers, bounded_json_loads, checked_body, nesting_exceeds
from tasks.dispatch import retry_countdown


def deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_a_job_body_passes_unchanged() -> None:
    job = {"account": "co-main", "text": "Hola", "recipients": [{"phone": "+573001234567", "vars": {"n": "A"}}]}
    assert bounded_json_loads(json.dumps([[job], {}, {}])) == [[job], {}, {}]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (deep_json(100_000), "RecursionError"),
        ("[[" + deep_json(500) + "], {}, {}]", "nests more than 32 levels"),
        (b"\xff\xfe{", "UnicodeDecodeError"),
        ("not json", "JSONDecodeError"),
    ],
)
def test_a_body_that_cannot_be_read_becomes_a_reason(body: str | bytes, why: str) -> None:
    args, kwargs, embed = bounded_json_loads(body)
    assert args == [] and embed == {} and why in kwargs[UNREADABLE]
    assert kwargs[UNREADABLE].startswith("the message could not be read")


@pytest.mark.parametrize("payload", [{"account": "x"}, [1, 2], [[], [], {}], ["job", {}, {}], [[], {}, "embed"]])
def test_a_body_that_is_not_args_kwargs_embed_becomes_a_reason(payload: object) -> None:
    assert "not [args, kwargs, embed]" in checked_body(payload)[1][UNREADABLE]


def test_nesting_is_measured_without_recursion() -> None:
    value: object = 1
    for _ in range(200_000):
        value = [value]
    assert nesting_exceeds(value, 32) and not nesting_exceeds([[{"a": [1]}]], 4)
    assert nesting_exceeds([[{"a": [1]}]], 3)


def test_headers_nested_too_deep_or_of_the_wrong_type_are_dropped() -> None:
    deep: object = "x"
    for _ in range(500):
        deep = {"a": deep}
    headers = {"id": "job-1", "task": "dispatcher.submit", "extra": deep, "shadow": ["x"],
               "timelimit": "soon", "argsrepr": "a" * 5000, "kwargsrepr": {"k": 1}, "retries": "3"}  # fmt: skip
    clean = bounded_headers(headers)
    assert clean == {"id": "job-1", "task": "dispatcher.submit", "argsrepr": "a" * 1024, "kwargsrepr": "",
                     "retries": 0}  # fmt: skip


@pytest.mark.parametrize("task_id", [None, 7, "", ["x"], "x" * 37])
def test_a_message_without_a_usable_task_id_is_an_invalid_task(task_id: object) -> None:
    with pytest.raises(InvalidTaskError):
        bounded_headers({"id": task_id, "task": "dispatcher.submit"})


def test_retry_countdowns_double_and_stay_under_the_cap() -> None:
    waits = [retry_countdown(n, 60.0) for n in range(40)]
    assert all(0.5 <= w <= 60.0 for w in waits)
    assert 0.5 <= waits[0] <= 1.0 and 4.0 <= waits[3] <= 8.0 and all(30.0 <= w for w in waits[7:])

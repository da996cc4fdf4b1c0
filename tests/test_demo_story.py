"""The demo's cast: every vendor's sandbox customer offers a sample job, and the story's parts go
to accounts by their declared facts (a sending window), never by name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from dispatcher.config import parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.sandbox.world import SECRETS, SandboxWorld, build_world
from dispatcher.vendors import VENDORS
from tasks.demo import _after_closing, _cast
from tests.conftest import BOGOTA_10AM, FakeClock


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    world = build_world(FakeClock(BOGOTA_10AM))
    yield world
    world.stop()


def test_every_vendor_has_a_customer_whose_sample_job_it_takes_whole(engine: Engine, world: SandboxWorld) -> None:
    # Given the sandbox's accounts and each customer's sample job at the demo's size
    accounts = parse_accounts(tomllib.loads(world.accounts_toml()), SECRETS)
    samples = dict(world.sample_jobs())
    # Then every vendor has one, on an account of that vendor
    assert sorted(accounts[key].vendor for key in samples) == sorted(VENDORS)
    for key, sample in samples.items():
        # And the account takes every recipient of it: none refused, no phone twice
        job = sample.job(key)
        result = ingest_job(engine, accounts, job, BOGOTA_10AM)
        assert (result.state, result.reason) == ("accepted", None), key
        assert sum(result.counts.values()) == result.counts["pending"] == sample.count, (key, result.counts)
        assert len({r["phone"] for r in job["recipients"]}) == sample.count


def test_the_story_goes_to_the_first_account_with_a_window_whatever_its_name(world: SandboxWorld) -> None:
    # Given accounts where only a later one keeps Colombia's window: the first is open always
    first, later = [key for key, _ in world.sample_jobs()][:2]
    extra = {first: {"window": "always"}, later: {"window": "co-crc"}}
    accounts = parse_accounts(tomllib.loads(world.accounts_toml(**extra)), SECRETS)
    # When the demo casts its story with a headline of 7 recipients
    story = _cast(world, accounts, 7)
    # Then that account heads it, with the headline's size; the others keep their samples' sizes
    assert (story.windowed, story.window.name) == (later, "co-crc")
    sizes = {key: len(job["recipients"]) for key, job in story.jobs.items()}
    assert sizes == {key: 7 if key == later else sample.count for key, sample in world.sample_jobs()}
    # And its late job arrives half an hour after the window closes, and waits for the opening
    late = _after_closing(story, BOGOTA_10AM)
    assert late.astimezone(story.zone).strftime("%H:%M") == "21:30"
    assert not story.window.is_open(late, story.phone)
    opening = story.window.next_opening(late, story.phone)
    assert (opening - late, opening.astimezone(story.zone).strftime("%H:%M")) == (
        timedelta(hours=10, minutes=30),
        "08:00",
    )

"""The compose ``demo`` profile: the sandbox reachable by service name and the job producer.

The demo stack reads ``deploy/sandbox-accounts.toml``; it must be what ``dispatcher sandbox``
writes for the address the compose file gives it, and every sample job ``dispatcher produce``
drops on the real broker must be one those accounts accept whole.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from sqlalchemy import Engine

from dispatcher.config import parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.sandbox.world import ACCOUNT_KEYS, SECRETS
from tests.conftest import BOGOTA_10AM, REDIS_URL, wipe_redis
from tests.sandbox.harness import sandbox_command

ROOT = Path(__file__).resolve().parent.parent
DEMO_ACCOUNTS = ROOT / "deploy" / "sandbox-accounts.toml"
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_demo_accounts_file_is_what_the_sandbox_service_writes(tmp_path: Path) -> None:
    # Given the sandbox started with the compose service's public URL
    public_url = option(SERVICES["sandbox"]["command"], "--public-url")
    assert public_url == f"http://sandbox:{option(SERVICES['sandbox']['command'], '--port')}"
    written = tmp_path / "accounts.toml"
    with sandbox_command(written, "--public-url", public_url):
        # Then the committed demo accounts file says the same
        assert tomllib.loads(DEMO_ACCOUNTS.read_text()) == tomllib.loads(written.read_text())
    # And each secret it names reaches every service that reads accounts
    names = set(SECRETS)
    for service in ("worker", "beat", "webhooks"):
        assert names <= set(SERVICES[service]["environment"]), service
    assert set(parse_accounts(tomllib.loads(DEMO_ACCOUNTS.read_text()), SECRETS)) == set(ACCOUNT_KEYS.values())


def queued_messages(client) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every message waiting on the jobs queue (kombu keeps one list per priority step)."""
    keys = [k for k in client.keys("jobs*") if client.type(k) == b"list"]
    return [json.loads(raw) for key in keys for raw in client.lrange(key, 0, -1)]


def test_the_producer_drops_jobs_the_sandbox_accounts_accept_whole(engine: Engine, redis_client) -> None:  # type: ignore[no-untyped-def]
    # Given the producer run twice over on the real broker
    wipe_redis(redis_client)
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "produce", "--rounds", "2", "--every", "0", "--recipients", "20"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": REDIS_URL},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # When the queued messages are read back
    messages = queued_messages(redis_client)
    assert len(messages) == 2 * len(ACCOUNT_KEYS)
    accounts = parse_accounts(tomllib.loads(DEMO_ACCOUNTS.read_text()), SECRETS)
    phones: dict[str, list[str]] = {}
    for message in messages:
        headers = message["headers"]
        job = json.loads(base64.b64decode(message["body"]))[0][0]
        # Then each is a dispatcher.submit whose Flower summary names no phone
        assert headers["task"] == "dispatcher.submit"
        assert headers["argsrepr"] == f"({{'account': {job['account']!r}, 'recipients': 20}},)"
        # And the sandbox account it names takes every recipient
        result = ingest_job(engine, accounts, job, BOGOTA_10AM, job_id=headers["id"])
        assert (result.state, result.reason) == ("accepted", None)
        assert sum(result.counts.values()) == result.counts["pending"] == 20, result.counts
        phones.setdefault(job["account"], []).extend(r["phone"] for r in job["recipients"])
    # And no round repeats a phone, so the sandbox counts no phone as sent twice
    assert set(phones) == set(accounts)
    assert all(len(set(p)) == len(p) == 40 for p in phones.values())

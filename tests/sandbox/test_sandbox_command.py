"""``dispatcher sandbox`` as an operator runs it: five vendors on loopback, faults by flag."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from tests.workers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_sandbox_command_serves_five_vendors_with_faults_by_flag(tmp_path: Path) -> None:
    # Given the sandbox started with IT Cloud in maintenance
    port, accounts = free_port(), tmp_path / "accounts.toml"
    args = ["sandbox", "--port", str(port), "--accounts-out", str(accounts), "--maintenance", "itcloud"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not accounts.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Then the accounts file it wrote names all five vendors on that port
        tables = tomllib.loads(accounts.read_text())["accounts"]
        assert {t["vendor"] for t in tables.values()} == {
            "itcloud",
            "smsclouds",
            "smsclick",
            "voipcomms",
            "ogangi",
        }
        assert all(f"127.0.0.1:{port}" in t["base_url"] for t in tables.values())
        # And IT Cloud answers maintenance (-6) per number, sending nothing
        form = {
            "user": "demo@example.com",
            "token": "sandbox-itcloud-token",
            "GSM": "573001234567",
            "SMSText": "x",
        }
        assert httpx.post(f"http://127.0.0.1:{port}/itcloud/api/sendsms", data=form).text == "573001234567,-6"
        # And smsclouds, not in maintenance, takes a message
        headers = {"Authorization": "Bearer sandbox-smsclouds-token"}
        body = {"message": "Hola", "cellphones": ["4498987282"], "country": 1, "allow_responses": True}
        assert httpx.post(
            f"http://127.0.0.1:{port}/smsclouds/api/v1/message", json=body, headers=headers
        ).is_success
        # And its ledger is readable from outside
        summary = httpx.get(f"http://127.0.0.1:{port}/_sandbox").json()
        assert summary["requests"] == {"itcloud": 1, "smsclouds": 1}
        assert summary["duplicates"] == {} and summary["violations"] == []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)

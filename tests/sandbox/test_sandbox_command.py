"""``dispatcher sandbox`` as an operator runs it: every vendor on loopback, faults by flag."""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx

from dispatcher.vendors import VENDORS
from tests.sandbox.harness import sandbox_command


def test_the_sandbox_command_serves_every_vendor_with_faults_by_flag(tmp_path: Path) -> None:
    # Given the sandbox started with IT Cloud in maintenance
    accounts = tmp_path / "accounts.toml"
    with sandbox_command(accounts, "--maintenance", "itcloud") as port:
        # Then the accounts file it wrote names every vendor of the registry on that port
        tables = tomllib.loads(accounts.read_text())["accounts"]
        assert {t["vendor"] for t in tables.values()} == set(VENDORS)
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

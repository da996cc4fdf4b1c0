"""The ``dispatcher`` command as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.sandbox.world import sample_jobs
from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def env(tmp_path: Path, redis_client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[accounts.co-main]\nvendor = "itcloud"\nbase_url = "http://127.0.0.1:9/itcloud"\n'
        'user = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\n'
    )
    return {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "REDIS_URL": REDIS_URL,
        "DISPATCHER_ACCOUNTS": str(accounts),
        "ITCLOUD_TOKEN": "tok-cli-123456",
        "PYTHONPATH": str(ROOT),
    }


def test_submit_a_csv_then_read_its_status(env: dict[str, str], tmp_path: Path) -> None:
    # Given a migrated database and a CSV of 3,000 recipients, one of them bad
    assert run(["migrate"], env).returncode == 0
    csv = tmp_path / "recipients.csv"
    rows = [f"+57300{i:07d},Ana {i}" for i in range(2999)] + ["12,Bad"]
    csv.write_text("phone,name\n" + "\n".join(rows) + "\n")
    # When it is submitted
    done = run(["submit", str(csv), "--account", "co-main", "--text", "Hola {name}"], env)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    # Then the status shows every recipient, and the token is nowhere in the output
    status = run(["status", job_id, "--json"], env)
    counts = json.loads(status.stdout)["counts"]
    assert (counts["pending"], counts["rejected"]) == (2999, 1)
    human = run(["status", job_id], env).stdout
    assert "pending" in human and "is not a valid number" in human
    assert "tok-cli-123456" not in done.stdout + done.stderr + status.stdout + human


def test_submit_a_bad_json_job_prints_its_id_and_reason(env: dict[str, str], tmp_path: Path) -> None:
    run(["migrate"], env)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"account": "nobody", "text": "x", "recipients": ["+573001234567"]}))
    done = run(["submit", str(job)], env)
    assert done.returncode == 1 and "unknown account 'nobody'" in done.stderr
    assert json.loads(run(["status", done.stdout.strip(), "--json"], env).stdout)["state"] == "rejected"


def test_a_bad_accounts_file_stops_with_the_account_and_field(env: dict[str, str]) -> None:
    Path(env["DISPATCHER_ACCOUNTS"]).write_text('[accounts.co-x]\nvendor = "carrier-pigeon"\n')
    done = run(["check-config"], env)
    assert done.returncode == 2
    assert "co-x" in done.stderr and "'vendor'" in done.stderr


def test_a_worker_with_a_bad_accounts_file_does_not_start(env: dict[str, str]) -> None:
    Path(env["DISPATCHER_ACCOUNTS"]).write_text(
        '[accounts.co-x]\nvendor = "itcloud"\nuser = "u"\ntoken = "${MISSING_TOKEN}"\n'
    )
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert worker.returncode != 0
    assert "co-x" in worker.stderr and "MISSING_TOKEN" in worker.stderr


def test_the_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DISPATCHER_ACCOUNTS")}
    done = run(["demo", "--recipients", "1500"], {**env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "broker memory://" in out and "sqlite:///" in out
    # The late Colombian job waited, then went out at 08:00
    assert "co-itcloud late: pending 50" in out and "co-itcloud late: sent 50" in out
    # One row per vendor's sandbox account; each column counts one state
    samples = dict(sample_jobs())
    rows = {
        line.split()[0]: [int(n) for n in line.split()[2:]]
        for line in out.splitlines()
        if line.split()[:1] and line.split()[0] in samples
    }
    assert set(rows) == {"co-itcloud", "mx-smsclouds", "mx-smsclick", "us-voipcomms", "ve-ogangi"} | set(samples)
    columns = ("sent", "delivered", "failed", "waiting", "rejected", "replies", "opt-outs", "unknown")
    counts = {account: dict(zip(columns, row, strict=True)) for account, row in rows.items()}
    # Every recipient reached the vendor and settled (the 1500 + the late 50 on itcloud): none waits,
    # none was refused at ingest, none is unknown
    handed = {account: c["sent"] + c["delivered"] + c["failed"] for account, c in counts.items()}
    # (a vendor added later: its whole sample job)
    assert handed == {account: sample.count for account, sample in samples.items()} | {
        "co-itcloud": 1550,
        "mx-smsclouds": 300,
        "mx-smsclick": 40,
        "us-voipcomms": 200,
        "ve-ogangi": 40,
    }
    assert all(c["waiting"] == c["rejected"] == c["unknown"] == 0 for c in counts.values())
    # IT Cloud gives no delivery reports: every one of its messages is sent, none failed
    assert (counts["co-itcloud"]["sent"], counts["co-itcloud"]["failed"]) == (1550, 0)
    # Delivery reports move voipcomms messages on from sent; itcloud's replies came in
    assert counts["us-voipcomms"]["delivered"] > 0 and counts["co-itcloud"]["replies"] > 0
    assert "limit violations: 0; phones sent twice: 0" in out


def submit_file(env: dict[str, str], path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert run(["migrate"], env).returncode == 0
    return run(["submit", str(path), "--account", "co-main", "--text", "Hola {name}", *extra], env)


def test_a_csv_with_a_bom_is_read_as_spreadsheets_write_it(env: dict[str, str], tmp_path: Path) -> None:
    # Given a CSV saved by a spreadsheet, with a UTF-8 byte order mark before 'phone'
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffphone,name\r\n+573001234567,Ana\r\n+573001234568,Ñoño\r\n".encode())
    # When it is submitted, then both recipients are pending
    done = submit_file(env, path)
    assert done.returncode == 0, done.stderr
    counts = json.loads(run(["status", done.stdout.strip(), "--json"], env).stdout)["counts"]
    assert (counts["pending"], counts["rejected"]) == (2, 0)


LIMIT = 131072  # the csv module's default field size limit


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.csv", None, "missing.csv: cannot read it (No such file or directory)"),
        ("missing.json", None, "missing.json: cannot read it (No such file or directory)"),
        ("nophone.csv", b"telefono,name\n+573001234567,Ana\n", "the CSV needs a 'phone' column (found 'telefono'"),
        ("empty.csv", b"", "the CSV needs a 'phone' column (found no header)"),
        ("latin1.csv", "phone,nómbre\n".encode("latin-1"), "latin1.csv line 1: not UTF-8"),
        ("wide.csv", b"phone," + b"n" * (LIMIT + 1) + b"\n", f"wide.csv line 1: a field is longer than {LIMIT}"),
        ("job.json", b'{"account": "co-main", "text": ', "job.json: not valid JSON (Expecting value at line 1"),
        ("latin1.json", '{"text": "canción"}'.encode("latin-1"), "latin1.json: not UTF-8"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json: JSON nested too deeply to read"),
    ],
)
def test_a_file_submit_cannot_read_is_one_line_and_exit_code_2(
    env: dict[str, str], tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    done = submit_file(env, path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("dispatcher submit: ") and expected in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        (b"+573009999999,Jos\xe9\n", "big.csv line 2502: not UTF-8"),
        (b"+573009999999," + b"n" * (LIMIT + 1) + b"\n", f"big.csv line 2502: a field is longer than {LIMIT}"),
    ],
)
def test_a_csv_that_breaks_mid_file_leaves_a_rejected_job_the_operator_can_read(
    env: dict[str, str], tmp_path: Path, bad_line: bytes, expected: str
) -> None:
    # Given a CSV whose line 2502 cannot be read, after a first chunk of 2000 recipients was stored
    path = tmp_path / "big.csv"
    good = "".join(f"+57300{i:07d},Ana\n" for i in range(2500)).encode()
    path.write_bytes(b"phone,name\n" + good + bad_line + b"+573001111111,Eva\n")
    # When it is submitted
    done = submit_file(env, path)
    # Then the command says where and why, and the job is stored rejected with that reason
    assert done.returncode == 2 and expected in done.stderr and "stored as rejected" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    status = json.loads(run(["status", done.stdout.strip(), "--json"], env).stdout)
    assert status["state"] == "rejected" and expected in status["reason"]
    assert (status["counts"]["pending"], status["counts"]["canceled"]) == (0, 2000)


def test_an_operator_adds_lists_and_removes_an_opt_out(env: dict[str, str]) -> None:
    # Given a migrated database
    assert run(["migrate"], env).returncode == 0
    # When an operator opts a national number out, twice, and lists the account
    added = run(["optout", "add", "co-main", "3001234567"], env)
    again = run(["optout", "add", "co-main", "+573001234567"], env)
    listed = run(["optout", "list", "co-main"], env)
    # Then it is stored once, in E.164, with who put it there
    assert (added.returncode, added.stdout.strip()) == (0, "+573001234567 opted out of co-main")
    assert again.stdout.strip() == "+573001234567 was already opted out of co-main"
    assert listed.stdout.startswith("+573001234567\t") and "added by an operator" in listed.stdout
    # And the next job to it is refused before any vendor is called
    job = Path(env["DISPATCHER_ACCOUNTS"]).with_name("job.json")
    job.write_text(json.dumps({"account": "co-main", "text": "x", "recipients": ["+573001234567"]}))
    refused = run(["submit", str(job)], env)
    assert refused.returncode == 1 and "opted_out" in refused.stderr
    # And removing it empties the list; bad input is a usage error
    assert (
        run(["optout", "remove", "co-main", "3001234567"], env).stdout.strip()
        == "+573001234567 taken off co-main's list"
    )
    assert run(["optout", "list", "co-main"], env).stdout.strip() == "co-main: no opt-outs"
    assert run(["optout", "add", "co-main"], env).returncode == 2
    assert run(["optout", "add", "co-main", "12"], env).returncode == 2
    assert "no account 'nobody'" in run(["optout", "list", "nobody"], env).stderr


def test_check_config_warns_of_an_account_whose_vendor_pushes_but_that_has_no_push_url(
    env: dict[str, str],
) -> None:
    done = run(["check-config"], env)
    assert done.returncode == 0
    assert "warning: co-main: no webhook_secret, so no push URL; itcloud pushes get 403" in done.stdout
    with Path(env["DISPATCHER_ACCOUNTS"]).open("a") as accounts:
        accounts.write('webhook_secret = "${HOOK_SECRET}"\n')
    done = run(["check-config"], {**env, "HOOK_SECRET": "hook-secret-0123456789"})
    assert done.returncode == 0 and "warning" not in done.stdout and "hook-secret-0123456789" not in done.stdout

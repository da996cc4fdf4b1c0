"""Ingest: the job contract, stored rejections, idempotency, batches (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.exc import OperationalError

from dispatcher import jobs
from dispatcher.config import parse_accounts
from dispatcher.jobs import ingest_job, ingest_stream
from dispatcher.models import Batch, Job, Message, OptOut
from tests.conftest import BOGOTA_10AM, BOGOTA_2130, make_accounts

ACCOUNTS = make_accounts("http://127.0.0.1:9/itcloud")
NOW = BOGOTA_10AM


def job(**fields: object) -> dict:
    base = {
        "account": "co-main",
        "text": "Hola {name}",
        "recipients": [{"phone": "+573001234567", "vars": {"name": "Ana"}}],
    }
    return {**base, **fields}


def messages(engine: Engine, job_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(Message).where(Message.job_id == job_id).order_by(Message.id)).all()


def stored_job(engine: Engine, job_id: str):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(Job).where(Job.id == job_id)).one()


def test_one_row_per_recipient_in_e164_with_rendered_text(engine: Engine) -> None:
    # Given a job with an international and a national number
    recipients = [
        {"phone": "+57 300 123 4567", "vars": {"name": "Ana"}},
        {"phone": "3109876543", "vars": {"name": "Luis"}},
    ]
    # When it is ingested
    result = ingest_job(engine, ACCOUNTS, job(recipients=recipients), NOW)
    # Then each recipient is a pending row in E.164 (the national one in the account's country)
    rows = messages(engine, result.job_id)
    assert [(r.address, r.text, r.state) for r in rows] == [
        ("+573001234567", "Hola Ana", "pending"),
        ("+573109876543", "Hola Luis", "pending"),
    ]
    assert result.created and result.state == "accepted"
    assert stored_job(engine, result.job_id).recipients == 2


TEN_MB = "x" * (10 * 1024 * 1024)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"text": "hi", "recipients": ["+573001234567"]}, "account: Field required"),
        (job(recipients="+573001234567"), "recipients: Input should be a valid list"),
        (job(text=42), "text: Input should be a valid string"),
        (job(account="nobody"), "unknown account 'nobody'"),
        (job(text=TEN_MB), "text: String should have at most 4096 characters"),
        (job(recipients=[]), "recipients: List should have at least 1 item"),
        (job(priority="urgent"), "priority: Input should be 'bulk' or 'otp'"),
        (job(send_at="2026-11-23T09:00:00"), "send_at: Input should have timezone info"),
        (job(options={"metodo_envio": "pigeon"}), "options: metodo_envio must be one of"),
        (job(surprise=1), "surprise: Extra inputs are not permitted"),
        (["not", "an", "object"], "a job must be a JSON object, not list"),
    ],
)
def test_a_job_that_cannot_be_read_is_stored_rejected_with_its_reason(
    engine: Engine, raw: object, expected: str
) -> None:
    result = ingest_job(engine, ACCOUNTS, raw, NOW)
    stored = stored_job(engine, result.job_id)
    assert (result.state, stored.state) == ("rejected", "rejected")
    assert expected in stored.reason
    assert len(stored.reason) < 1000 and stored.text is None  # the 10 MB text is not kept
    assert messages(engine, result.job_id) == []


def test_ten_thousand_bad_numbers_are_stored_rejections(engine: Engine) -> None:
    recipients = [{"phone": f"12{i}"} for i in range(10_000)]
    result = ingest_job(engine, ACCOUNTS, job(text="hi", recipients=recipients), NOW)
    rows = messages(engine, result.job_id)
    assert len(rows) == 10_000
    assert {r.state for r in rows} == {"rejected"}
    assert all("is not a valid number" in r.reason for r in rows)
    stored = stored_job(engine, result.job_id)
    assert stored.state == "rejected" and "10000 rejected" in stored.reason


def test_a_bad_recipient_is_rejected_while_the_rest_go_on(engine: Engine) -> None:
    recipients = [
        {"phone": "+573001234567", "vars": {"name": "Ana"}},
        {"phone": "+573001234568", "vars": {"name": "Ñ" * 800}},
        {"phone": "+573001234569"},
        {"phone": "+573001234567", "vars": {"name": "Ana again"}},
        {"phone": "+573001234570", "vars": {"name": {"nested": 1}}},
        {"telefono": "+573001234571"},
        {"phone": "+573001234572", "vars": {"name": "Opted"}},
    ]
    with engine.begin() as conn:
        conn.execute(OptOut.__table__.insert().values(account="co-main", phone="+573001234572", created_at=NOW))
    result = ingest_job(engine, ACCOUNTS, job(recipients=recipients), NOW)
    reasons = sorted((r.address, r.state, r.reason or "") for r in messages(engine, result.job_id))
    assert reasons == [
        ("", "rejected", "unknown recipient field 'telefono'"),
        ("+573001234567", "pending", ""),
        ("+573001234567", "rejected", "duplicate of an earlier recipient of this job"),
        ("+573001234568", "rejected", "text is 805 characters; itcloud takes at most 765"),
        ("+573001234569", "rejected", "variable 'name' missing for this recipient"),
        ("+573001234570", "rejected", "variable 'name' must be text or a number"),
        ("+573001234572", "rejected", "opted_out"),
    ]


def test_the_same_idempotency_key_returns_the_same_job(engine: Engine) -> None:
    first = ingest_job(engine, ACCOUNTS, job(idempotency_key="crm-991"), NOW)
    second = ingest_job(engine, ACCOUNTS, job(idempotency_key="crm-991"), NOW + timedelta(minutes=5))
    assert second.job_id == first.job_id and not second.created
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar() == 1


def test_a_redelivered_submit_with_the_same_job_id_stores_nothing_new(engine: Engine) -> None:
    first = ingest_job(engine, ACCOUNTS, job(), NOW, job_id="task-1")
    again = ingest_job(engine, ACCOUNTS, job(), NOW, job_id="task-1")
    assert (first.job_id, again.job_id, again.created) == ("task-1", "task-1", False)
    assert len(messages(engine, "task-1")) == 1


def test_recipients_are_cut_into_batches_within_the_vendor_limit(engine: Engine) -> None:
    recipients = ({"phone": f"+57300{i:07d}", "vars": {"name": "A"}} for i in range(2500))
    header = {"account": "co-main", "text": "Hola {name}"}
    result = ingest_stream(engine, ACCOUNTS, header, recipients, NOW)
    with engine.connect() as conn:
        sizes = (
            conn.execute(
                select(func.count())
                .select_from(Message)
                .where(Message.job_id == result.job_id)
                .group_by(Message.batch_id)
            )
            .scalars()
            .all()
        )
    assert sorted(sizes) == [500, 1000, 1000]


def test_a_job_outside_the_window_waits_for_the_next_opening(engine: Engine) -> None:
    result = ingest_job(engine, ACCOUNTS, job(), BOGOTA_2130)
    with engine.connect() as conn:
        batch = conn.execute(select(Batch).where(Batch.job_id == result.job_id)).one()
    opening = BOGOTA_2130.replace(hour=13, minute=0)  # 08:00 Bogota = 13:00 UTC, same UTC day
    assert batch.not_before == opening
    assert messages(engine, result.job_id)[0].not_before == opening


def test_send_at_in_the_future_holds_the_job(engine: Engine) -> None:
    later = NOW + timedelta(hours=2)
    result = ingest_job(engine, ACCOUNTS, job(send_at=later.isoformat()), NOW)
    with engine.connect() as conn:
        assert conn.execute(select(Batch.not_before).where(Batch.job_id == result.job_id)).scalar() == later


MX = parse_accounts(
    {"accounts": {"mx-main": {"vendor": "smsclouds", "token": "${SMSCLOUDS_TOKEN}"}}},
    {"SMSCLOUDS_TOKEN": "tok-123456"},
)


def test_an_email_job_stores_addresses_and_refuses_bad_ones(engine: Engine) -> None:
    raw = {
        "account": "mx-main",
        "channel": "email",
        "text": "Hola, su factura",
        "options": {"subject": "Factura"},
        "recipients": [{"email": "Ana@Example.com", "vars": {"name": "Ana"}}, {"email": "nobody"}],
    }
    result = ingest_job(engine, MX, raw, NOW)
    rows = sorted((r.address, r.state, r.reason or "") for r in messages(engine, result.job_id))
    assert rows == [
        ("ana@example.com", "pending", ""),
        ("nobody", "rejected", "'nobody' is not an email address"),
    ]
    assert stored_job(engine, result.job_id).options == {"subject": "Factura", "channel": "email"}


def test_a_channel_the_vendor_does_not_offer_is_a_rejected_job(engine: Engine) -> None:
    result = ingest_job(engine, ACCOUNTS, job(channel="voice"), NOW)
    assert result.state == "rejected" and "itcloud offers no 'voice' channel" in result.reason


def test_a_number_the_vendor_cannot_reach_is_refused_at_ingest(engine: Engine) -> None:
    raw = {"account": "mx-main", "text": "Hola", "recipients": ["+447911123456", "+524498987282"]}
    result = ingest_job(engine, MX, raw, NOW)
    rows = sorted((r.address, r.state, r.reason or "") for r in messages(engine, result.job_id))
    assert rows == [
        ("+447911123456", "rejected", "smsclouds has no route for this number's country"),
        ("+524498987282", "pending", ""),
    ]


def test_duplicates_are_found_across_chunks_stored_or_not(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given chunks of 1000 recipients, and later chunks that repeat phones an earlier chunk stored
    monkeypatch.setattr(jobs, "CHUNK", 1000)

    def phone(i: int) -> dict:
        return {"phone": f"+57300{i:07d}"}

    first = [{"phone": f"12{i}"} for i in range(10)] + [phone(i) for i in range(990)]
    later = [phone(7), phone(500), phone(990)] + [phone(1000 + i) for i in range(1500)] + [phone(3), phone(1200)]
    result = ingest_stream(engine, ACCOUNTS, {"account": "co-main", "text": "Hola"}, iter(first + later), NOW)
    # Then each repeat is rejected as a duplicate and every phone is pending once
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.address, Message.state, Message.reason, Message.batch_id).where(
                Message.job_id == result.job_id
            )
        )
        rows = rows.all()
    duplicates = sorted(r.address for r in rows if r.reason == "duplicate of an earlier recipient of this job")
    assert duplicates == ["+573000000003", "+573000000007", "+573000000500", "+573000001200"]
    assert all(r.batch_id is None for r in rows if r.state == "rejected")
    pending = [r.address for r in rows if r.state == "pending"]
    assert len(pending) == len(set(pending)) == 990 + 1 + 1500


def test_a_nul_in_one_phone_or_one_variable_rejects_that_recipient_only(engine: Engine) -> None:
    # Given recipients with a NUL in a phone, in a variable, and a lone surrogate in a variable
    recipients = [
        {"phone": "+57300123\x004567", "vars": {"name": "Ana"}},
        {"phone": "+573001234568", "vars": {"name": "Lu\x00is"}},
        {"phone": "+573001234569", "vars": {"name": "Sur\ud800"}},
        {"phone": "+573001234570", "vars": {"name": "Eva"}},
    ]
    # When the job is ingested
    result = ingest_job(engine, ACCOUNTS, job(recipients=recipients), NOW)
    # Then those three are rejected with a reason, stored without the bad character; the fourth goes
    rows = [(r.address, r.state, r.reason, r.vars) for r in messages(engine, result.job_id)]
    assert sorted(rows) == sorted(
        [
            ("+57300123\ufffd4567", "rejected", "phone holds a NUL or a lone surrogate character", None),
            ("+573001234568", "rejected", "variable 'name' holds a NUL or a lone surrogate character", None),
            ("+573001234569", "rejected", "variable 'name' holds a NUL or a lone surrogate character", None),
            ("+573001234570", "pending", None, {"name": "Eva"}),
        ]
    )
    assert result.state == "accepted"


def deep(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"text": "Hola\x00 {name}"}, "text: holds a NUL or a lone surrogate character"),
        ({"account": "co-\x00main"}, "account: holds a NUL or a lone surrogate character"),
        ({"idempotency_key": "k\x00"}, "idempotency_key: holds a NUL or a lone surrogate character"),
        ({"options": {"metodo_envio": "2via\x00"}}, "options.metodo_envio: holds a NUL"),
        ({"options": {"x\x00": 1}}, "options: a name is not text, or holds a NUL"),
        ({"send_at": "9999-12-31T23:59:59-05:00"}, "send_at: must lie within 366 days of now"),
        ({"send_at": "0001-01-01T00:00:00+05:00"}, "send_at: must lie within 366 days of now"),
        ({"expires_at": "9999-12-31T23:59:59+00:00"}, "expires_at: must lie within 366 days of now"),
        ({"expires_at": (NOW - timedelta(hours=1)).isoformat()}, "expires_at: must be later than now"),
        ({"options": deep(5)}, "options.a.a.a.a: nested deeper than 4 levels"),
        ({"options": deep(10_000)}, "nested deeper than 4 levels"),
        ({"options": {"metodo_envio": "x" * 5000}}, "options.metodo_envio: longer than 4096 characters"),
        ({"options": {"many": list(range(2000))}}, "options: more than 1000 values"),
        ({"surprise\x00": 1}, "surprise\ufffd: Extra inputs are not permitted"),
        ({"options": {"metodo_envio": float("nan")}}, "options.metodo_envio: nan is not a number JSON can hold"),
        ({"options": {"metodo_envio": b"2via"}}, "options.metodo_envio: a bytes is not a JSON value"),
        ({"options": {f"o{i}": i for i in range(100_000)}}, "options: more than 1000 values"),
    ],
)
def test_bad_characters_far_dates_and_deep_options_are_a_stored_rejection(
    engine: Engine, fields: dict, expected: str
) -> None:
    # When a job with something wrong about it as a whole comes in
    result = ingest_job(engine, ACCOUNTS, job(**fields), NOW)
    # Then it is stored rejected with a one-line reason, no message row, and an excerpt of it
    stored = stored_job(engine, result.job_id)
    assert (result.state, stored.state) == ("rejected", "rejected")
    assert expected in stored.reason and "\n" not in stored.reason and "\x00" not in stored.reason
    assert messages(engine, result.job_id) == []
    assert 0 < len(stored.payload) <= 2048 and "\x00" not in stored.payload


def test_a_rejected_job_keeps_a_redacted_cut_excerpt_of_what_came_in(engine: Engine) -> None:
    # Given a job refused for its options, carrying secret-looking option values and 10,000 recipients
    options = {
        "api_token": "tok-secret-1",
        "password": "pw-secret-2",
        "private_key": "pk-3",
        "metodo_envio": "owl",
    }
    recipients = [{"phone": f"+57300{i:07d}", "vars": {"name": "N" * 500}} for i in range(10_000)]
    result = ingest_job(engine, ACCOUNTS, job(options=options, recipients=recipients), NOW)
    # Then the excerpt shows what arrived, cut, with no secret value
    payload = stored_job(engine, result.job_id).payload
    assert len(payload) <= 2048
    assert '"account": "co-main"' in payload and "+573000000000" in payload and "9995 more" in payload
    assert not any(secret in payload for secret in ("tok-secret-1", "pw-secret-2", "pk-3"))


def test_each_message_has_its_deadline(engine: Engine) -> None:
    # Given one job with an expiry and one without (the account's max_age is a day)
    expires = NOW + timedelta(hours=6)
    with_expiry = ingest_job(engine, ACCOUNTS, job(expires_at=expires.isoformat()), NOW)
    without = ingest_job(engine, ACCOUNTS, job(idempotency_key="other"), NOW)
    # Then each message's deadline is the job's expiry, else created + max_age
    assert [m.deadline for m in messages(engine, with_expiry.job_id)] == [expires]
    assert [m.deadline for m in messages(engine, without.job_id)] == [NOW + timedelta(days=1)]
    assert stored_job(engine, with_expiry.job_id).expires_at == expires


class LostConnection:
    """Fails the n-th statement that inserts message rows, as a dropped connection would."""

    def __init__(self, engine: Engine, fail_at: int):
        self.engine, self.fail_at, self.seen = engine, fail_at, 0
        event.listen(engine, "before_cursor_execute", self)

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
            self.seen += 1
            if self.seen == self.fail_at:
                raise OperationalError(statement[:40], None, ConnectionError("server closed the connection"))

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self)


def test_an_ingest_cut_after_two_chunks_resumes_with_each_row_once(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given chunks of 100 (each one message insert), and a connection lost in the third chunk
    monkeypatch.setattr(jobs, "CHUNK", 100)
    recipients = [{"phone": f"+57300{i:07d}", "vars": {"name": f"N{i}"}} for i in range(350)]
    recipients += [{"phone": "+573000000042", "vars": {"name": "again"}}]  # a repeat of chunk one
    lost = LostConnection(engine, fail_at=3)
    # When the ingest runs, the database error reaches the caller (who retries), not a rejection
    with pytest.raises(OperationalError):
        ingest_job(engine, ACCOUNTS, job(recipients=recipients), NOW, job_id="task-7")
    lost.remove()
    half = stored_job(engine, "task-7")
    assert (half.state, half.ingested, len(messages(engine, "task-7"))) == ("ingesting", 200, 200)
    # And the retried call with the same job id resumes after the two stored chunks
    result = ingest_job(engine, ACCOUNTS, job(recipients=recipients), NOW, job_id="task-7")
    # Then every recipient is stored exactly once, in whole batches, and the job is accepted
    rows = messages(engine, "task-7")
    pending = sorted(r.address for r in rows if r.state == "pending")
    assert pending == [f"+57300{i:07d}" for i in range(350)]
    assert [(r.address, r.reason) for r in rows if r.state == "rejected"] == [("+573000000042", jobs.DUPLICATE)]
    assert (result.state, result.created) == ("accepted", True)
    assert (stored_job(engine, "task-7").ingested, stored_job(engine, "task-7").recipients) == (351, 351)
    with engine.connect() as conn:
        sizes = conn.execute(
            select(func.count(Message.id)).select_from(Batch).outerjoin(Message).group_by(Batch.id)
        ).scalars()
        assert sorted(sizes) == [50, 100, 100, 100]
    # And a third call finds the finished job and stores nothing
    again = ingest_job(engine, ACCOUNTS, job(recipients=recipients), NOW, job_id="task-7")
    assert (again.state, again.created, len(messages(engine, "task-7"))) == ("accepted", False, 351)


def test_the_same_key_from_another_task_returns_the_job_still_ingesting(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jobs, "CHUNK", 100)
    recipients = [f"+57300{i:07d}" for i in range(250)]
    lost = LostConnection(engine, fail_at=2)
    with pytest.raises(OperationalError):
        ingest_job(
            engine,
            ACCOUNTS,
            job(text="Hola", idempotency_key="crm-5", recipients=recipients),
            NOW,
            job_id="task-a",
        )
    lost.remove()
    other = ingest_job(
        engine, ACCOUNTS, job(text="Hola", idempotency_key="crm-5", recipients=recipients), NOW, job_id="task-b"
    )
    assert (other.job_id, other.state, other.created) == ("task-a", "ingesting", False)
    assert len(messages(engine, "task-a")) == 100 and messages(engine, "task-b") == []


def test_a_source_that_breaks_mid_job_stops_it_with_its_reason(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given a stream whose 250th recipient cannot be read (after two committed chunks of 100)
    monkeypatch.setattr(jobs, "CHUNK", 100)

    def source():  # type: ignore[no-untyped-def]
        for i in range(249):
            yield {"phone": f"+57300{i:07d}"}
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    result = ingest_stream(engine, ACCOUNTS, {"account": "co-main", "text": "Hola"}, source(), NOW)
    # Then the job is rejected with the reason, and what it stored waits no more
    stored = stored_job(engine, result.job_id)
    assert stored.state == "rejected" and stored.reason.startswith(
        "recipient 250 could not be read: UnicodeDecodeError"
    )
    states = {r.state for r in messages(engine, result.job_id)}
    assert states == {"canceled"} and len(messages(engine, result.job_id)) == 200


def test_a_retry_after_the_job_expired_ends_it_instead_of_leaving_it_ingesting(
    engine: Engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Given a job expiring in an hour, cut after its first chunk
    monkeypatch.setattr(jobs, "CHUNK", 100)
    raw = job(
        text="Hola",
        expires_at=(NOW + timedelta(hours=1)).isoformat(),
        recipients=[f"+57300{i:07d}" for i in range(150)],
    )
    lost = LostConnection(engine, fail_at=2)
    with pytest.raises(OperationalError):
        ingest_job(engine, ACCOUNTS, raw, NOW, job_id="task-9")
    lost.remove()
    # When the retry comes after the expiry
    result = ingest_job(engine, ACCOUNTS, raw, NOW + timedelta(hours=2), job_id="task-9")
    # Then the job ends rejected with the reason, and its stored rows wait no more
    stored = stored_job(engine, "task-9")
    assert (result.state, stored.state) == ("rejected", "rejected")
    assert stored.reason == "expires_at: must be later than now and than send_at"
    assert {r.state for r in messages(engine, "task-9")} == {"canceled"} and len(messages(engine, "task-9")) == 100


class Statements:
    """Counts the statements that insert into each table."""

    def __init__(self, engine: Engine):
        self.engine, self.counts = engine, {"messages": 0, "batches": 0}
        event.listen(engine, "before_cursor_execute", self)

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        for table in self.counts:
            if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
                self.counts[table] += 1

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self)


def test_on_postgresql_a_chunk_is_one_batch_insert_and_one_message_insert_per_state(
    pg_engine: Engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # The COPY path is PostgreSQL's; SQLite inserts with executemany.
    engine = pg_engine
    # Given chunks of 2000 recipients (two batches of 1000 each), one bad number in the second
    monkeypatch.setattr(jobs, "CHUNK", 2000)
    recipients = [f"+57300{i:07d}" for i in range(3999)] + ["12"]
    counted = Statements(engine)
    result = ingest_job(engine, ACCOUNTS, job(text="Hola", recipients=recipients), NOW)
    counted.remove()
    # Then each chunk made its batches in one statement and its pending rows in one (rows
    # through COPY), and the chunk with a rejection stored it in one more
    assert counted.counts == {"messages": 3, "batches": 2}
    rows = messages(engine, result.job_id)
    assert sorted(r.state for r in rows).count("pending") == 3999
    assert [(r.address, r.batch_id) for r in rows if r.state == "rejected"] == [("12", None)]
    with engine.connect() as conn:
        sizes = conn.execute(
            select(func.count(Message.id)).select_from(Batch).join(Message).group_by(Batch.id)
        ).scalars()
        assert sorted(sizes) == [999, 1000, 1000, 1000]


def test_a_delivered_submit_lets_go_of_its_recipients_a_direct_call_keeps_them(
    engine: Engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from dispatcher.config import Settings
    from dispatcher.ratelimit import MemoryLimiter
    from dispatcher.services import Services
    from dispatcher.transport import Transport
    from tasks import dispatch
    from tasks.runtime import Runtime
    from tests.conftest import FakeClock

    services = Services(engine, ACCOUNTS, MemoryLimiter(), Transport(), Settings(), FakeClock(NOW))
    monkeypatch.setattr(dispatch, "runtime", lambda: Runtime(Settings(), ACCOUNTS, services, None))
    monkeypatch.setattr(dispatch, "release_account", lambda account: 0)
    recipients = [
        {"phone": "+573001234567", "vars": {"name": "Ana"}},
        {"phone": "+573001234568", "vars": {"name": "Lu"}},
    ]
    # Given a job as a worker reads it from a message (its own copy), and one a caller passes in
    delivered, direct = job(recipients=list(recipients)), job(recipients=list(recipients))
    dispatch.submit.push_request(id="job-from-a-message", called_directly=False)
    try:
        dispatch.submit.run(delivered)
    finally:
        dispatch.submit.pop_request()
    direct_id = dispatch.submit(direct)
    # Then both are stored; the worker's copy let go of its recipients, the caller's is untouched
    assert len(messages(engine, "job-from-a-message")) == len(messages(engine, direct_id)) == 2
    assert delivered["recipients"] == [] and direct["recipients"] == recipients


def test_a_connection_lost_during_the_copy_is_a_database_error_the_caller_retries(
    pg_engine: Engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    engine = pg_engine  # only PostgreSQL ingests through COPY
    # Given chunks of 100, and the server ending the session just before the second chunk's COPY
    monkeypatch.setattr(jobs, "CHUNK", 100)
    recipients = [f"+57300{i:07d}" for i in range(250)]
    truncates = []

    def kill(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("TRUNCATE ingest_rows"):
            truncates.append(statement)
            if len(truncates) == 2:
                pid = conn.connection.driver_connection.info.backend_pid
                with engine.connect() as other:
                    # waits until the session is gone, not just signalled, before the COPY starts
                    other.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})

    event.listen(engine, "after_cursor_execute", kill)
    # When the ingest runs, the driver's error reaches the caller as a database error to retry
    with pytest.raises(OperationalError):
        ingest_job(engine, ACCOUNTS, job(text="Hola", recipients=recipients), NOW, job_id="task-copy")
    event.remove(engine, "after_cursor_execute", kill)
    assert stored_job(engine, "task-copy").state == "ingesting"
    # And the retry resumes after the stored chunk, each recipient once
    result = ingest_job(engine, ACCOUNTS, job(text="Hola", recipients=recipients), NOW, job_id="task-copy")
    assert (result.state, sorted(r.address for r in messages(engine, "task-copy"))) == (
        "accepted",
        sorted(recipients),
    )

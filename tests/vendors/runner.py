"""One runner for every vendor's table of cases.

A case lists the exact requests the adapter must build and the replies the vendor gives; the
runner sends the requests through the real ``Transport`` over ``httpx.MockTransport`` (the
vendor's edge), checks every request field named, every outcome, that every mocked reply was
used, and that no secret of the account shows in the captured logs or in a result.
"""

from __future__ import annotations

import json as jsonlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from dispatcher.errors import VendorError
from dispatcher.transport import Transport
from dispatcher.vendors.base import Account, Outcome, Outgoing, Recipient


@dataclass
class Exchange:
    """One request the adapter must build (fields named are checked) and the reply it gets."""

    method: str
    path: str
    query: Mapping[str, str] | None = None
    form: Mapping[str, str] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200
    body: str | bytes = ""
    reply_headers: Mapping[str, str] = field(default_factory=dict)
    #: a transport error raised instead of a reply (e.g. httpx.ReadTimeout)
    raises: type[Exception] | None = None


@dataclass
class SendCase:
    """Send a batch: requests expected, replies given, one outcome per recipient expected."""

    label: str
    recipients: Sequence[tuple[str, str]]  #: (E.164 phone, text)
    exchanges: Sequence[Exchange]
    #: per recipient in order: (outcome, vendor id, code)
    outcomes: Sequence[tuple[Outcome, str | None, str | None]] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    #: the VendorError subclass the whole request fails with, instead of outcomes
    error: type[VendorError] | None = None


@dataclass
class QueryCase:
    """A status, reply or balance query: build with ``args``, parse the reply into ``expected``."""

    label: str
    args: Sequence[Any]
    exchanges: Sequence[Exchange]
    expected: Any = None
    error: type[Exception] | None = None


class MockVendor:
    """The vendor's edge: checks each request against the next exchange and answers it."""

    def __init__(self, exchanges: Sequence[Exchange]):
        self.exchanges = list(exchanges)
        self.used = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert self.used < len(self.exchanges), f"unexpected extra request {request.method} {request.url}"
        expected = self.exchanges[self.used]
        self.used += 1
        check_request(request, expected)
        if expected.raises is not None:
            raise expected.raises("mocked transport error", request=request)
        body = expected.body.encode() if isinstance(expected.body, str) else expected.body
        return httpx.Response(expected.status, content=body, headers=dict(expected.reply_headers))

    def assert_all_used(self) -> None:
        assert self.used == len(self.exchanges), f"{len(self.exchanges) - self.used} mocked replies unused"


def check_request(request: httpx.Request, expected: Exchange) -> None:
    """Compare one built request with the expected one, field by field."""
    assert request.method == expected.method
    assert request.url.path == expected.path
    if expected.query is not None:
        assert dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)) == dict(expected.query)
    content = request.read()
    if expected.form is not None:
        assert request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        assert dict(parse_qsl(content.decode(), keep_blank_values=True)) == dict(expected.form)
    if expected.json is not None:
        assert jsonlib.loads(content) == expected.json
    for name, value in expected.headers.items():
        assert request.headers.get(name) == value, f"header {name}"


def assert_no_secret(account: Account, caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    """No secret of the account in the logs or in the given texts."""
    for secret in account.secrets():
        assert secret not in caplog.text, "a secret leaked into the logs"
        for text in texts:
            assert secret not in text, "a secret leaked into a result"


def run_send_case(adapter: Any, account: Account, case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    """Build the batch's requests, exchange them with the mock vendor, check every outcome."""
    caplog.set_level(logging.DEBUG)
    recipients = [Recipient(i + 1, phone, text) for i, (phone, text) in enumerate(case.recipients)]
    vendor = MockVendor(case.exchanges)
    transport = Transport(httpx.Client(transport=httpx.MockTransport(vendor)))
    results = []
    try:
        for sent in adapter.build_send(account, Outgoing(recipients, adapter.validate_options(case.options))):
            response = transport.send(sent.request, 1.0, 1.0)
            results.extend(adapter.parse_send(account, sent, response))
    except VendorError as exc:
        assert case.error is not None, f"unexpected {type(exc).__name__}: {exc}"
        assert isinstance(exc, case.error), f"{type(exc).__name__} is not {case.error.__name__}"
        assert_no_secret(account, caplog, str(exc))
        vendor.assert_all_used()
        return
    assert case.error is None, f"expected {case.error.__name__}"
    vendor.assert_all_used()
    by_id = {r.message_id: r for r in results}
    assert sorted(by_id) == [r.message_id for r in recipients], "one result per recipient"
    got = [
        (by_id[r.message_id].outcome, by_id[r.message_id].vendor_id, by_id[r.message_id].code) for r in recipients
    ]
    assert got == list(case.outcomes)
    assert_no_secret(account, caplog, *(r.reason for r in results))


def run_query_case(
    account: Account,
    build: Callable[..., httpx.Request],
    parse: Callable[[httpx.Response], Any],
    case: QueryCase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Build one query, exchange it, and compare the parsed value (or error) with the case."""
    caplog.set_level(logging.DEBUG)
    vendor = MockVendor(case.exchanges)
    transport = Transport(httpx.Client(transport=httpx.MockTransport(vendor)))
    try:
        value = parse(transport.send(build(account, *case.args), 1.0, 1.0))
    except Exception as exc:  # noqa: BLE001 - compared with the case below
        assert case.error is not None and isinstance(exc, case.error), f"unexpected {exc!r}"
        assert_no_secret(account, caplog, str(exc))
        vendor.assert_all_used()
        return
    assert case.error is None, f"expected {case.error.__name__}, got {value!r}"
    vendor.assert_all_used()
    assert value == case.expected
    assert_no_secret(account, caplog, repr(value))

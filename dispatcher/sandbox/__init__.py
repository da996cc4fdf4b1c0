"""Loopback simulators of the vendor APIs, for tests, the demo and benchmarks.

Each vendor is served under its key (``http://127.0.0.1:PORT/itcloud/api/sendsms``), answers as
its manual says, records every request, counts sends per phone, and counts limit violations.
``core`` is the server and ledger, ``messages`` how accepted messages progress, ``skeleton`` the
customer record, auth, replies and dates every simulator shares; a vendor module holds only its
paths, codes and quirks.
"""

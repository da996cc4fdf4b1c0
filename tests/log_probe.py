"""A task that logs a secret the way an unexpected library error would, loaded only into test workers.

The product's own lines never carry a secret (each place that handles a vendor's words scrubs
them first), so the last net, the log handlers' ``SecretFilter``, needs a line that does: a
message, an extra, and an exception whose text and traceback echo a credential.
"""

from __future__ import annotations

import logging
import os

from tasks.app import app

log = logging.getLogger("dispatcher.probe")


@app.task(name="tests.log_probe")
def log_probe() -> None:
    """Log the account's token three ways, then fail with it in the exception."""
    token = os.environ["ITCLOUD_TOKEN"]
    url = f"https://vendor.example/query.php?user=ops&token={token}"
    log.warning("a library echoed its request: %s", url, extra={"request": {"url": url}})
    raise RuntimeError(f"GET {url} failed")

"""A password dialog confirmed on another worker than its first entry (docs/cluster.md).

The first entry is kept as a keyed digest until the confirmation (ussd/services/password.py);
every worker must key it alike, or a confirmation on the other worker reads as a mismatch.
"""

from __future__ import annotations

import aiohttp

from tests.cluster.test_kill import DONE, PASSWORD
from tests.cluster.test_workers import Process, http, workers  # noqa: F401 (fixtures)

RU = "79161234567"


async def _step(session: aiohttp.ClientSession, worker: Process, op: str, text: str) -> str:
    async with session.post(f"{worker.url}/api/v1/phones/{RU}/{op}", json={"text": text}) as r:
        body = await r.json()
        assert r.status == 200, body
        return str(body["text"])


async def test_a_password_confirmed_on_the_other_worker_is_set(
    workers: list[Process],  # noqa: F811
    http: aiohttp.ClientSession,  # noqa: F811
) -> None:
    a, b = workers
    await _step(http, a, "dial", "*111*17#")
    await _step(http, a, "reply", PASSWORD)
    assert await _step(http, b, "reply", PASSWORD) in DONE
    # And the other way round, with a mismatch still told as one.
    await _step(http, b, "dial", "*111*17#")
    await _step(http, b, "reply", PASSWORD)
    assert await _step(http, a, "reply", PASSWORD + "x") not in DONE

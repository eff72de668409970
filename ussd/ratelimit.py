"""Per-client rate limits of the website (docs/account.md "Website"): a token bucket per key.

Sans-IO: time is a parameter. Each key (a client's address) has a bucket of `per_minute`
tokens that refills at `per_minute` a minute; a request takes one, and with none left it is
refused with the seconds until the next one. At most `cap` keys are remembered, the least
recently seen dropped first, so clients cycling through addresses cost bounded memory: a
dropped key only starts again with a full bucket.
"""

from __future__ import annotations

from collections import OrderedDict

CAP = 10_000  # clients remembered; the least recently seen goes first


class ClientLimit:
    """A token bucket per client: `per_minute` requests at once, then `per_minute` a minute.

    `per_minute` 0 switches the limit off.
    """

    def __init__(self, per_minute: int, cap: int = CAP) -> None:
        if per_minute < 0 or cap < 1:
            raise ValueError("per_minute must be ≥ 0 and cap ≥ 1")
        self.per_minute = per_minute
        self.cap = cap
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float) -> float:
        """Take a token for `client`: 0.0 when allowed, else the seconds until one is free.

        A refused request takes nothing, so retrying after the answer's wait succeeds.
        """
        if self.per_minute == 0:
            return 0.0
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.pop(client, (float(self.per_minute), now))
        # A clock that went back (a restored state) refills nothing rather than going negative.
        tokens = min(float(self.per_minute), tokens + max(0.0, now - at) * rate)
        wait = 0.0
        if tokens >= 1.0 - 1e-9:  # waiting exactly the wait told must be enough
            tokens = max(0.0, tokens - 1.0)
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[client] = (tokens, now)  # re-inserted: the newest is last
        while len(self._buckets) > self.cap:
            self._buckets.popitem(last=False)
        return wait

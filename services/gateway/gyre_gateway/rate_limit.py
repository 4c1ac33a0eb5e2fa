"""Per-key rate limits: a token bucket per API key, in this gateway replica's memory.

Per replica on purpose: a check costs no network round trip (the gateway's added latency budget
is a few milliseconds), and the buckets need no shared state that outlives a restart. With R
replicas behind a load balancer a key gets up to R times its limit; set the limit per replica.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

SECONDS_PER_MINUTE = 60.0


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled continuously over a minute; a request takes one token (or one per input)."""

    capacity: float
    tokens: float
    updated: float

    @property
    def refill_per_s(self) -> float:
        return self.capacity / SECONDS_PER_MINUTE

    def take(self, now: float, amount: float = 1.0) -> float:
        """0 when ``amount`` tokens were taken; else the seconds until they will be there (nothing is taken)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = now
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.refill_per_s

    def give_back(self, amount: float) -> None:
        self.tokens = min(self.capacity, self.tokens + amount)


class RateLimiter:
    """One bucket per key id; a key whose limit changed starts a fresh bucket at that limit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def acquire(self, key_id: str, per_minute: int, amount: int = 1) -> float:
        """Take ``amount`` from ``key_id``'s allowance: 0 if allowed, else the seconds to wait.

        ``amount`` must not exceed ``per_minute`` (it would never be allowed): callers refuse such a request first.
        """
        now = self.clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.capacity != per_minute:
            # Only authenticated keys get here, so the table grows with the number of keys, not of callers.
            bucket = TokenBucket(capacity=float(per_minute), tokens=float(per_minute), updated=now)
            self._buckets[key_id] = bucket
        return bucket.take(now, amount)

    def give_back(self, key_id: str, amount: int) -> None:
        """Return what a request took but did not use (e.g. the service behind refused it)."""
        bucket = self._buckets.get(key_id)
        if bucket is not None:
            bucket.give_back(amount)

"""Per-key rate limits: a token bucket per API key, in this gateway replica's memory.

Per replica on purpose: a check costs no network round trip (the gateway's added latency budget
is a few milliseconds), and the buckets need no shared state that outlives a restart. With R
replicas behind a load balancer a key gets up to R times its limit; set the limit per replica.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

SECONDS_PER_MINUTE = 60.0


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled continuously over a minute; one request takes one token."""

    capacity: float
    tokens: float
    updated: float

    @property
    def refill_per_s(self) -> float:
        return self.capacity / SECONDS_PER_MINUTE

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one will be there (nothing is taken)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.refill_per_s


class RateLimiter:
    """One bucket per key id; a key whose limit changed starts a fresh bucket at that limit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def acquire(self, key_id: str, per_minute: int) -> float:
        """Take one request from ``key_id``'s allowance: 0 if allowed, else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.capacity != per_minute:
            # Only authenticated keys get here, so the table grows with the number of keys, not of callers.
            bucket = TokenBucket(capacity=float(per_minute), tokens=float(per_minute), updated=now)
            self._buckets[key_id] = bucket
        return bucket.take(now)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` is whole seconds: round up, so a client that waits that long gets through."""
    return str(max(1, math.ceil(wait_s)))

"""Backoff for work that failed in a retryable way."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: initial * multiplier**(attempt-1), capped, with jitter."""

    initial_seconds: float = 0.5
    multiplier: float = 2.0
    maximum_seconds: float = 30.0
    jitter: float = 0.1  # +- this fraction, so retries of many items spread out

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt >= 1)."""
        base = min(
            self.maximum_seconds, self.initial_seconds * self.multiplier ** max(0, attempt - 1)
        )
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

"""When and how the SDK clients retry.

A call is retried when it failed with ``StoreUnavailableError`` (the server's store was
unreachable: nothing was applied, the store's calls are atomic) or ``ServiceUnavailableError``
(the coordinator could not be reached). Backoff before attempt k (k >= 1) is uniform in
[0, min(max_delay, initial * multiplier**(k-1))] ("full jitter"), so clients that failed together
do not retry together.

Every call but ``add_prompts`` is idempotent, so an ambiguous failure (the request was sent but
no answer came) is retried too. ``add_prompts`` is retried only when the request surely did not
arrive (connection refused) or the server answered that its store was unreachable: a repeated
``{"count": k}`` would append k more prompts.

Trainers and rollout workers that must ride out a coordinator restart give a time budget instead
of a count: ``RetryPolicy(for_seconds=600, max_delay=5)`` keeps trying for ten minutes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cdas.core.errors import CdasError, ServiceUnavailableError, StoreUnavailableError


class NotSentError(ServiceUnavailableError):
    """The request never reached the coordinator (connection refused): safe to retry anything."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    """Tries in all (1: no retry)."""
    initial: float = 0.05
    multiplier: float = 2.0
    max_delay: float = 2.0
    for_seconds: float | None = None
    """When set, retry until this many seconds have passed since the first try, however many
    tries that takes (``attempts`` is then ignored)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.for_seconds is not None and not self.for_seconds >= 0:
            raise ValueError(f"for_seconds must be >= 0, got {self.for_seconds}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` >= 1 tries failed)."""
        return random.uniform(
            0, min(self.max_delay, self.initial * self.multiplier ** (attempt - 1))
        )

    def should_retry(
        self, error: CdasError, attempt: int, idempotent: bool, elapsed: float = 0.0
    ) -> bool:
        """Whether to retry after ``attempt`` failed tries, ``elapsed`` s after the first."""
        if self.for_seconds is None:
            out_of_budget = attempt >= self.attempts
        else:
            out_of_budget = elapsed >= self.for_seconds
        if out_of_budget or not isinstance(error, StoreUnavailableError):
            return False
        if idempotent or isinstance(error, NotSentError):
            return True
        return not isinstance(error, ServiceUnavailableError)  # the store said so: not applied


NO_RETRY = RetryPolicy(attempts=1)

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

The default policy, ``RetryPolicy()``, keeps trying for ``DEFAULT_SECONDS`` (30 s), with waits of
at most 2 s: a client with the defaults rides out an ordinary restart of Redis (1-3 s) or of the
coordinator (a pod rescheduled, up to 30 s) without an error reaching the caller. A count
(``RetryPolicy(attempts=3)``) or another budget (``RetryPolicy(for_seconds=600, max_delay=5)``,
what the trainers and the rollout worker use: ten minutes) replaces it; ``NO_RETRY`` fails at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cdas.core.errors import CdasError, ServiceUnavailableError, StoreUnavailableError


class NotSentError(ServiceUnavailableError):
    """The request never reached the coordinator (connection refused): safe to retry anything."""


DEFAULT_SECONDS = 30.0
"""The default policy's time budget: longer than a Redis or coordinator restart."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int | None = None
    """Tries in all (1: no retry). Used when ``for_seconds`` is None; with neither set, the
    budget is ``DEFAULT_SECONDS``."""
    initial: float = 0.05
    multiplier: float = 2.0
    max_delay: float = 2.0
    for_seconds: float | None = None
    """When set, retry until this many seconds have passed since the first try, however many
    tries that takes (``attempts`` is then ignored)."""

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.for_seconds is not None and not self.for_seconds >= 0:
            raise ValueError(f"for_seconds must be >= 0, got {self.for_seconds}")

    @property
    def budget(self) -> float | None:
        """Seconds of retrying allowed (None: bounded by ``attempts`` instead)."""
        if self.for_seconds is not None:
            return self.for_seconds
        return DEFAULT_SECONDS if self.attempts is None else None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` >= 1 tries failed)."""
        return random.uniform(
            0, min(self.max_delay, self.initial * self.multiplier ** (attempt - 1))
        )

    def should_retry(
        self, error: CdasError, attempt: int, idempotent: bool, elapsed: float = 0.0
    ) -> bool:
        """Whether to retry after ``attempt`` failed tries, ``elapsed`` s after the first."""
        budget = self.budget
        out_of_budget = attempt >= (self.attempts or 1) if budget is None else elapsed >= budget
        if out_of_budget or not isinstance(error, StoreUnavailableError):
            return False
        if idempotent or isinstance(error, NotSentError):
            return True
        return not isinstance(error, ServiceUnavailableError)  # the store said so: not applied


NO_RETRY = RetryPolicy(attempts=1)

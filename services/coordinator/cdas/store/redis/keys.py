"""The one module that spells Redis keys.

Every key of a run carries the run's hash tag, ``{<run_id>}``, so a run's keys live in one Redis
Cluster slot and every script can touch all of them (run ids cannot contain braces). Layout::

    cdas:{run}:meta                hash    config, fingerprint, version, scalars, structure counters
    cdas:{run}:core                string  24-byte records per prompt: D f64, t i32, s f64, step i32
    cdas:{run}:labels              string  f64 label per prompt (runs with labels)
    cdas:{run}:ids / :names        hash    explicit prompt id -> index, index -> id
    cdas:{run}:steps               zset    retained steps (score = step)
    cdas:{run}:step:<n>            hash    issued rounds (packed int32 ids, competence), applied set
    cdas:{run}:stats               hash    step -> statistics (JSON)
    cdas:{run}:index:<name>        zset    ordered index: score D, member key53 (7 B) + index (4 B)
    cdas:{run}:pool:<name>:items   string  int32 layout of a uniform pool
    cdas:{run}:pool:<name>:pos     string  int32 position + 1 of each prompt (0: not a member)
    cdas:{run}:tree:<name>         string  f64 nodes of a sum tree
    cdas:{run}:floats:<name>       string  f64 per prompt
"""

from __future__ import annotations

PREFIX = "cdas"
META_PATTERN = f"{PREFIX}:{{*}}:meta"
"""Matches every run's meta key (for listing runs)."""


class RunKeys:
    """The keys of one run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.base = f"{PREFIX}:{{{run_id}}}"
        self.meta = f"{self.base}:meta"
        self.core = f"{self.base}:core"
        self.labels = f"{self.base}:labels"
        self.ids = f"{self.base}:ids"
        self.names = f"{self.base}:names"
        self.steps = f"{self.base}:steps"
        self.stats = f"{self.base}:stats"

    def step(self, step: int) -> str:
        return f"{self.base}:step:{step}"

    def index(self, name: str) -> str:
        return f"{self.base}:index:{name}"

    def pool_items(self, name: str) -> str:
        return f"{self.base}:pool:{name}:items"

    def pool_pos(self, name: str) -> str:
        return f"{self.base}:pool:{name}:pos"

    def tree(self, name: str) -> str:
        return f"{self.base}:tree:{name}"

    def floats(self, name: str) -> str:
        return f"{self.base}:floats:{name}"

    def fixed(self) -> list[str]:
        """The keys every run may have, whatever its strategy."""
        return [self.meta, self.core, self.labels, self.ids, self.names, self.steps, self.stats]


def run_id_of(meta_key: str) -> str:
    """The run id in a meta key ``cdas:{run}:meta``."""
    return meta_key[len(PREFIX) + 2 : -len("}:meta")]

"""Scale-out: the coordinator served by two ``cdas serve`` processes against one 3-node Redis
Cluster, behind one round-robin load balancer, answers exactly as one process on one plain Redis.

Both deployments get the same workload: five runs (cdas, dynamic with rounds, prioritized, random,
curriculum with labels) trained at once from threads by the simulated GRPO trainer, each of its
calls spread over both processes (REST through the balancer, which sends every request to the
next process; REST and gRPC straight to one process or the other), with the retries a multi-rank
trainer makes: the same (step, round) asked again through the other process (and, some steps,
through both at the same moment), results posted in part through one process and in full through
the other (or in full through both at once), posted again through the balancer, and a 409 for
the same (step, round) with another size. Then snapshots taken through one process are restored
through the other, a run is deleted and created again otherwise through the other process than
the one that keeps using it, and every typed error is asked through every door. Every answer
(batches, report outcomes, prompts, states with their history, run lists, snapshots' logical
state), every trainer's step records, and every run's final logical state in the store must be
the same in both deployments.

The second test kills one of the two processes (SIGKILL) mid-run, right after it applied a
report whose answer never reached the trainer: the balancer routes everything to the survivor,
the trainer's retry is answered as a duplicate there, and the final state equals that of the
single process (which saw the same report posted twice): nothing lost, nothing applied twice.
"""

from __future__ import annotations

import json
import signal
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

import cdas
from cdas.client import GrpcClient, RestClient
from cdas.core.results import Result
from cdas.core.views import Advance, Batch, PromptInfo, ReportOutcome, RunInfo
from cdas.sim.trainer import StepRecord, train
from cdas.sim.twin import Twin, TwinParams
from tests.balancer import RoundRobinBalancer
from tests.conftest import assert_same_state, comparable, logical_state
from tests.redis_servers import RedisClusterNodes, RedisServer
from tests.services import ServeProcess, serve_process

TWIN = TwinParams().with_(prompts=360, heldout=200, batch=12)
ADDED = 60
"""prompts appended after the run is created (``add_prompts``)"""
STEPS = 20
SCHEDULE = [{"until_step": 3, "max_label": 2}, {"until_step": 6, "max_label": 4}, {}]


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    strategy: str
    params: dict[str, Any] | None
    seed: int

    @property
    def rounds(self) -> bool:
        return self.strategy == "dynamic"

    def twin(self) -> Twin:
        return Twin(TWIN, self.seed)


RUNS = [
    RunSpec("cd", "cdas", {"warmup": True}, 1),
    RunSpec("dy", "dynamic", {"max_rounds": 3}, 2),
    RunSpec("pri", "prioritized", None, 3),
    RunSpec("rnd", "random", None, 4),
    RunSpec("cu", "curriculum", {"schedule": SCHEDULE}, 5),
]

# ---------------------------------------------------------------------------- doors and answers

Door = RestClient | GrpcClient


@dataclass(frozen=True)
class Doors:
    """One deployment's ways in: ``lb`` (REST through the balancer), ``rest0``/``rest1`` and
    ``grpc0``/``grpc1`` (straight to process 0 or 1; the same process in the single one)."""

    by_name: dict[str, Door]

    def __getitem__(self, name: str) -> Door:
        return self.by_name[name]


def _other(door: str) -> str:
    """The same kind of door on the other process."""
    return door[:-1] + {"0": "1", "1": "0"}[door[-1]]


Entry = tuple[str, str, Any]
"""(door, method, answer or error)"""


class Log:
    """Calls the deployment's doors and records every answer and typed error."""

    def __init__(self, doors: Doors) -> None:
        self.doors = doors
        self.entries: list[Entry] = []

    def ok(self, door: str, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            value = getattr(self.doors[door], name)(*args, **kwargs)
        except cdas.CdasError as exc:
            raise AssertionError(f"{door} {name}{args[:2]} failed: {exc!r}") from exc
        self.entries.append((door, name, comparable(value)))
        return value

    def fails(
        self, error: type[cdas.CdasError], door: str, name: str, *args: Any, **kwargs: Any
    ) -> None:
        """A call that must fail with ``error`` (any other answer fails the test)."""
        with pytest.raises(error) as caught:
            getattr(self.doors[door], name)(*args, **kwargs)
        exc = caught.value
        details = json.loads(json.dumps(exc.details, default=str))
        self.entries.append((door, name, ("error", exc.code, exc.message, details)))

    def race(self, doors: tuple[str, str], name: str, *args: Any) -> list[Any]:
        """The same call through two doors at the same moment (two ranks racing); recorded as
        the pair of answers in either order."""
        barrier = threading.Barrier(2)
        answers: list[Any] = [None, None]
        failures: list[BaseException] = []

        def call(n: int) -> None:
            barrier.wait(timeout=30)
            try:
                answers[n] = getattr(self.doors[doors[n]], name)(*args)
            except BaseException as exc:  # reported by the calling thread
                failures.append(exc)

        threads = [threading.Thread(target=call, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures
        self.entries.append(("race", name, sorted(repr(comparable(a)) for a in answers)))
        return answers


def _assert_same_entries(expected: list[Entry], got: list[Entry], what: str) -> None:
    for i, (a, b) in enumerate(zip(expected, got, strict=False)):
        assert a == b, f"{what}: answer {i} differs\none process: {a}\ntwo processes: {b}"
    assert len(expected) == len(got), what


def _k(step: int, prompt_id: str) -> int:
    return zlib.crc32(f"{step}:{prompt_id}".encode()) % 9


def _results(step: int, ids: Sequence[str]) -> list[dict[str, Any]]:
    return [{"prompt_id": p, "correct": _k(step, p), "total": 8} for p in ids]


# ---------------------------------------------------------------------------- the trainers


class SpreadTrainer:
    """What the simulated trainer calls (``SamplingClient``), each call spread over both
    processes, with the extra calls of several ranks and of retries."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.turns: dict[str, int] = {}

    def _turn(self, method: str) -> int:
        """How many times ``method`` was called before: the k-th call goes first to process
        k % 2, over REST for k // 2 even, gRPC for odd (every pair of doors in four calls)."""
        k = self.turns.get(method, 0)
        self.turns[method] = k + 1
        return k

    def get_run(self, run_id: str) -> RunInfo:
        info: RunInfo = self.log.ok("lb", "get_run", run_id)
        return info

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        k = self._turn("next_batch")
        p, kind = k % 2, ("rest", "grpc")[(k // 2) % 2]
        if step % 4 == 1:  # two ranks ask for the step's batch at once, through both processes
            raced = self.log.race(
                (f"rest{p}", f"grpc{1 - p}"), "next_batch", run_id, step, size, round
            )
            assert raced[0] == raced[1]
        first: Batch = self.log.ok(f"{kind}{p}", "next_batch", run_id, step, size, round)
        # another rank (or a retry) asks for the same (step, round) through the other process
        again = self.log.ok(f"{kind}{1 - p}", "next_batch", run_id, step, size, round)
        assert again == first
        assert self.log.ok("lb", "next_batch", run_id, step, size, round) == first
        if (step + round) % 3 == 0:  # the same (step, round) with another size: 409 everywhere
            self.log.fails(cdas.ConflictError, "lb", "next_batch", run_id, step, size + 1, round)
            self.log.fails(cdas.ConflictError, f"grpc{p}", "next_batch", run_id, step, 1, round)
        return first

    def report_results(
        self, run_id: str, step: int, given: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        results = list(given)
        p = self._turn("report_results") % 2
        n, half = len(results), len(results) // 2
        outcome: ReportOutcome
        if step % 4 == 2:  # two ranks post the same results at once, through both processes
            raced = self.log.race(
                (f"grpc{p}", f"rest{1 - p}"), "report_results", run_id, step, results
            )
            outcome, other = sorted(raced, key=lambda o: -o.applied)
            assert (outcome.applied, outcome.duplicates, other.applied, other.duplicates) == (
                n,
                0,
                0,
                n,
            )
            assert other.competence == outcome.competence
        else:
            # a rank posts half, then a retry posts all through the other process
            first: ReportOutcome = self.log.ok(
                f"rest{p}", "report_results", run_id, step, results[:half]
            )
            assert (first.applied, first.duplicates) == (half, 0)
            outcome = self.log.ok(f"grpc{1 - p}", "report_results", run_id, step, results)
            assert (outcome.applied, outcome.duplicates) == (n - half, half)
        again: ReportOutcome = self.log.ok("lb", "report_results", run_id, step, results)
        assert (again.applied, again.duplicates) == (0, len(results))
        assert again.competence == outcome.competence
        if step % 3 == 0:
            self.log.ok(f"grpc{p}", "get_state", run_id)
            self.log.ok(f"rest{1 - p}", "get_state", run_id, history_from=step - 1)
            self.log.ok("lb", "get_run", run_id)
        return outcome

    def advance(
        self, run_id: str, step: int, given: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        """The one-call step as ``report_results`` is made (two ranks at once through both
        processes, or half through one and a retry of all through the other, then again through
        the balancer); the next step's batch is then what other ranks asking for it through
        either process get, and another size for it is a 409."""
        results = list(given)
        k = self._turn("advance")
        p, kind = k % 2, ("rest", "grpc")[(k // 2) % 2]
        other = "grpc" if kind == "rest" else "rest"
        n, half = len(results), len(results) // 2
        first: Advance
        if step % 4 == 2:
            raced = self.log.race(
                (f"grpc{p}", f"rest{1 - p}"), "advance", run_id, step, results, size
            )
            first, second = sorted(raced, key=lambda a: -a.report.applied)
            assert (first.report.applied, second.report.applied, second.report.duplicates) == (
                n,
                0,
                n,
            )
            assert (second.batch, second.report.competence) == (
                first.batch,
                first.report.competence,
            )
        else:
            part: Advance = self.log.ok(f"{kind}{p}", "advance", run_id, step, results[:half], size)
            first = self.log.ok(f"{other}{1 - p}", "advance", run_id, step, results, size)
            assert (first.report.applied, first.report.duplicates) == (n - half, half)
            assert first.batch == part.batch
        again: Advance = self.log.ok("lb", "advance", run_id, step, results, size)
        assert (again.report.applied, again.report.duplicates, again.batch) == (0, n, first.batch)
        for door in (f"{kind}{1 - p}", f"{other}{p}", "lb"):  # other ranks ask for the batch
            assert self.log.ok(door, "next_batch", run_id, step + 1, size, 0) == first.batch
        if step % 3 == 0:
            self.log.fails(cdas.ConflictError, "lb", "advance", run_id, step, results, size + 1)
        return first

    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        info: PromptInfo = self.log.ok("lb", "get_prompt", run_id, prompt_id)
        return info


class BalancedTrainer:
    """The simulated trainer's calls through the balancer only (and gRPC to the process that
    stays up). ``lost``: (run, step) of the report whose answer the crash loses; the single
    process, where nothing crashes, gets that report posted twice instead."""

    def __init__(self, log: Log, lost: tuple[str, int] | None) -> None:
        self.log = log
        self.lost = lost

    def get_run(self, run_id: str) -> RunInfo:
        info: RunInfo = self.log.ok("lb", "get_run", run_id)
        return info

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        first: Batch = self.log.ok("lb", "next_batch", run_id, step, size, round)
        assert self.log.ok("lb", "next_batch", run_id, step, size, round) == first
        return first

    def report_results(
        self, run_id: str, step: int, given: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        results = list(given)
        if self.lost == (run_id, step):
            self.log.doors["lb"].report_results(run_id, step, results)
        outcome: ReportOutcome = self.log.ok("lb", "report_results", run_id, step, results)
        again: ReportOutcome = self.log.ok("grpc1", "report_results", run_id, step, results)
        assert (again.applied, again.duplicates) == (0, len(results))
        if step % 2 == 0:
            self.log.ok("grpc1", "get_state", run_id)
        return outcome

    def advance(
        self, run_id: str, step: int, given: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        """As ``report_results``: the lost answer's report posted twice to the single process."""
        results = list(given)
        if self.lost == (run_id, step):
            self.log.doors["lb"].advance(run_id, step, results, size)
        answer: Advance = self.log.ok("lb", "advance", run_id, step, results, size)
        again: Advance = self.log.ok("grpc1", "advance", run_id, step, results, size)
        assert (again.report.applied, again.report.duplicates) == (0, len(results))
        assert again.batch == answer.batch
        if step % 2 == 0:
            self.log.ok("grpc1", "get_state", run_id)
        return answer

    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        info: PromptInfo = self.log.ok("lb", "get_prompt", run_id, prompt_id)
        return info


@dataclass
class Transcript:
    """Everything one deployment answered."""

    logs: dict[str, list[Entry]] = field(default_factory=dict)
    records: dict[str, list[StepRecord]] = field(default_factory=dict)

    def calls(self, door: str) -> int:
        return sum(1 for log in self.logs.values() for d, _, _ in log if d == door)


def _train_at_once(
    specs: Sequence[RunSpec],
    transcript: Transcript,
    client: Callable[[Log], SpreadTrainer | BalancedTrainer],
    doors: Doors,
) -> None:
    """Each run trained by its own thread (its own trainer), all at once."""
    failures: list[BaseException] = []

    def run(spec: RunSpec) -> None:
        log = Log(doors)
        try:
            transcript.records[spec.run_id] = train(
                client(log), spec.run_id, spec.twin(), STEPS, rounds=spec.rounds, band_sample=3
            )
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        transcript.logs[f"train {spec.run_id}"] = log.entries

    threads = [threading.Thread(target=run, args=(spec,)) for spec in specs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)


def _create_runs(log: Log, specs: Sequence[RunSpec]) -> None:
    for i, spec in enumerate(specs):
        door = ("rest0", "grpc1", "rest1", "grpc0")[i % 4]
        labels = spec.twin().labels.astype(float).tolist()
        size = TWIN.prompts - ADDED
        config = (spec.strategy, spec.params, spec.seed)
        first = labels[:size] if spec.strategy == "curriculum" else None
        created = log.ok(door, "put_run", spec.run_id, *config, size, first)
        assert created.created
        if first is not None:
            ids = [str(i) for i in range(size, TWIN.prompts)]
            log.ok(_other(door), "add_prompts", spec.run_id, ids, labels[size:])
        else:
            log.ok("lb", "add_prompts", spec.run_id, ADDED)
        # the same run put again through the other process: found, not created
        again = log.ok(_other(door), "put_run", spec.run_id, *config, size, first)
        assert not again.created
        assert again.size == TWIN.prompts
        log.fails(cdas.ConflictError, "lb", "put_run", spec.run_id, "random", None, 99, size)


# ---------------------------------------------------------------------------- the workloads


def spread_workload(doors: Doors) -> Transcript:
    transcript = Transcript()
    log = Log(doors)
    _create_runs(log, RUNS)
    for door in ("lb", "rest0", "rest1", "grpc0", "grpc1"):
        log.ok(door, "list_runs")
    transcript.logs["create"] = log.entries

    _train_at_once(RUNS, transcript, SpreadTrainer, doors)

    log = Log(doors)
    # snapshots taken through one process, restored through the other, over both protocols
    log.ok("rest1", "restore", "cd-copy", log.ok("rest0", "snapshot", "cd"))
    log.ok("grpc0", "restore", "dy-copy", log.ok("grpc1", "snapshot", "dy"))
    log.ok("rest0", "restore", "cu-copy", log.ok("grpc1", "snapshot", "cu"))
    for step in range(STEPS + 1, STEPS + 5):
        for n, (original, copy) in enumerate((("cd", "cd-copy"), ("dy", "dy-copy"))):
            a: Batch = log.ok(f"rest{n}", "next_batch", original, step, 12)
            b: Batch = log.ok(f"grpc{1 - n}", "next_batch", copy, step, 12)
            assert a.prompt_ids == b.prompt_ids
            results = _results(step, a.prompt_ids)
            outcome = log.ok("lb", "report_results", original, step, results)
            assert log.ok("lb", "report_results", copy, step, results) == outcome
            assert log.ok(f"grpc{n}", "report_results", copy, step, results).duplicates == 12
            pa = log.ok(f"rest{1 - n}", "get_prompt", original, a.prompt_ids[0])
            pb = log.ok(f"rest{n}", "get_prompt", copy, a.prompt_ids[0])
            assert pa == pb
    state = log.ok("lb", "get_state", "cd").to_dict()
    assert log.ok("grpc1", "get_state", "cd-copy").to_dict() == {**state, "run_id": "cd-copy"}

    # a run deleted through one process and created again, otherwise, through the other: the
    # first process must not answer from what it knew of the old run (its threshold here)
    rewards = [{"prompt_id": str(i), "rewards": [0.7] * 8} for i in range(6)]
    log.ok("rest0", "report_results", "rnd", STEPS + 1, rewards)
    assert log.ok("rest0", "get_prompt", "rnd", "0").last_pass_rate == 1.0
    log.ok("grpc1", "delete_run", "rnd")
    log.ok("rest1", "put_run", "rnd", "random", {"threshold": 0.9}, 4, TWIN.prompts)
    log.ok("rest0", "next_batch", "rnd", 0, TWIN.batch)
    assert log.ok("rest0", "report_results", "rnd", 0, rewards).applied == len(rewards)
    assert log.ok("rest0", "get_prompt", "rnd", "0").last_pass_rate == 0.0
    assert log.ok("grpc0", "report_results", "rnd", 0, rewards).duplicates == len(rewards)

    # the typed errors, through every door
    for door in ("lb", "rest0", "rest1", "grpc0", "grpc1"):
        log.fails(cdas.ConflictError, door, "next_batch", "cd", STEPS, TWIN.batch + 1)
        log.fails(cdas.ConflictError, door, "next_batch", "dy", STEPS, 5)
        log.fails(cdas.RunNotFoundError, door, "next_batch", "nope", 0, 4)
        unknown = [{"prompt_id": "9999", "correct": 1, "total": 8}]
        log.fails(cdas.InvalidArgumentError, door, "report_results", "cd", 1, unknown)
        bad = [{"prompt_id": "3", "correct": 9, "total": 8}]
        log.fails(cdas.InvalidArgumentError, door, "report_results", "pri", 1, bad)
        log.fails(cdas.InvalidArgumentError, door, "next_batch", "rnd", 50, TWIN.prompts + 1)
        log.fails(cdas.PromptNotFoundError, door, "get_prompt", "cd", "missing")
        log.fails(cdas.InvalidArgumentError, door, "restore", "junk", b"not a snapshot")
    log.ok("rest1", "delete_run", "dy-copy")
    log.fails(cdas.RunNotFoundError, "rest0", "get_run", "dy-copy")
    log.fails(cdas.RunNotFoundError, "grpc0", "delete_run", "dy-copy")

    # the end: every run as each door sees it
    for door in ("lb", "rest0", "rest1", "grpc0", "grpc1"):
        log.ok(door, "list_runs")
    for n, run_id in enumerate(["cd", "cd-copy", "dy", "pri", "rnd", "cu", "cu-copy"]):
        log.ok(("grpc0", "rest1", "lb")[n % 3], "get_state", run_id, frontier=5)
        log.ok(("rest0", "grpc1", "lb")[n % 3], "snapshot", run_id)
    transcript.logs["finish"] = log.entries
    return transcript


KILL_RUNS = [
    RunSpec("k-cd", "cdas", {"warmup": True}, 7),
    RunSpec("k-dy", "dynamic", {"max_rounds": 3}, 8),
    RunSpec("k-pri", "prioritized", None, 9),
]
LOST = ("k-cd", STEPS // 2)
"""The report the crash loses the answer of: mid-run (steps 1..STEPS), on a cdas run."""


def kill_workload(doors: Doors, crash: bool) -> Transcript:
    transcript = Transcript()
    log = Log(doors)
    _create_runs(log, KILL_RUNS)
    transcript.logs["create"] = log.entries
    _train_at_once(
        KILL_RUNS, transcript, lambda log: BalancedTrainer(log, None if crash else LOST), doors
    )
    log = Log(doors)
    log.ok("lb", "list_runs")
    log.ok("grpc1", "list_runs")
    for spec in KILL_RUNS:
        log.ok("lb", "get_state", spec.run_id, frontier=5)
        log.ok("grpc1", "get_run", spec.run_id)
        log.ok("lb", "snapshot", spec.run_id)
    transcript.logs["finish"] = log.entries
    return transcript


# ---------------------------------------------------------------------------- the deployments


@dataclass(frozen=True)
class Redises:
    cluster: RedisClusterNodes
    single: RedisServer

    def flush(self) -> None:
        for server in [*self.cluster.servers, self.single]:
            client = redis.Redis(port=server.port)
            client.flushall()
            client.close()


@pytest.fixture(scope="module")
def redises(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redises]:
    """A 3-node Redis Cluster (the two processes' store) and one plain redis-server (the single
    process's)."""
    directory = Path(tmp_path_factory.mktemp("scale-out"))
    cluster = RedisClusterNodes(directory / "cluster")
    single = RedisServer(directory / "single")
    try:
        cluster.start()
        single.start()
        yield Redises(cluster, single)
    finally:
        cluster.stop()
        single.stop()


def _doors(stack: ExitStack, lb: str, rest: Sequence[str], grpc: Sequence[str]) -> Doors:
    clients: dict[str, Door] = {"lb": stack.enter_context(RestClient(lb))}
    for n in (0, 1):
        clients[f"rest{n}"] = stack.enter_context(RestClient(rest[n]))
        clients[f"grpc{n}"] = stack.enter_context(GrpcClient(grpc[n]))
    return Doors(clients)


def _single_doors(stack: ExitStack, store: str) -> tuple[Doors, ServeProcess]:
    served = stack.enter_context(serve_process("--store", store))
    return _doors(stack, served.url, [served.url] * 2, [served.target] * 2), served


def _two_processes(
    stack: ExitStack, store: str
) -> tuple[Doors, RoundRobinBalancer, list[ServeProcess]]:
    served = [stack.enter_context(serve_process("--store", store)) for _ in range(2)]
    balancer = stack.enter_context(RoundRobinBalancer([("127.0.0.1", s.port) for s in served]))
    urls = [s.url for s in served]
    return _doors(stack, balancer.url, urls, [s.target for s in served]), balancer, served


def _assert_same_transcripts(expected: Transcript, got: Transcript) -> None:
    assert got.logs.keys() == expected.logs.keys()
    for name, entries in expected.logs.items():
        _assert_same_entries(entries, got.logs[name], name)
    assert got.records == expected.records
    assert len(got.records) == len(got.logs) - 2


def _assert_same_stores(cluster_url: str, single_url: str, runs: Sequence[str]) -> None:
    """Every run's whole logical state, read from each deployment's Redis by a library
    coordinator of its own."""
    cluster_store = cdas.RedisStore(cluster_url)
    single_store = cdas.RedisStore(single_url)
    try:
        on_cluster, on_single = cdas.Coordinator(cluster_store), cdas.Coordinator(single_store)
        assert [r.to_dict() for r in on_cluster.list_runs()] == [
            r.to_dict() for r in on_single.list_runs()
        ]
        assert sorted(r.run_id for r in on_single.list_runs()) == sorted(runs)
        for run_id in runs:
            assert_same_state(logical_state(on_cluster, run_id), logical_state(on_single, run_id))
    finally:
        cluster_store.close()
        single_store.close()


def _no_errors_logged(processes: Sequence[ServeProcess]) -> None:
    for served in processes:
        for line in served.lines:
            assert line.get("level") != "error", line


# ---------------------------------------------------------------------------- the tests


def test_two_processes_on_a_redis_cluster_behind_a_balancer_answer_as_one(
    redises: Redises,
) -> None:
    redises.flush()
    with ExitStack() as stack:
        doors, single = _single_doors(stack, redises.single.url)
        expected = spread_workload(doors)
    with ExitStack() as stack:
        doors, balancer, served = _two_processes(stack, redises.cluster.url)
        got = spread_workload(doors)
        stats = (list(balancer.served), balancer.failovers, balancer.bad_gateway)
    _assert_same_transcripts(expected, got)

    # the balancer sent each request to the next process: both served half of them
    lb_calls = got.calls("lb")
    assert lb_calls > 500
    served_by, failovers, bad_gateway = stats
    assert sum(served_by) == lb_calls
    assert abs(served_by[0] - served_by[1]) <= 1, served_by
    assert (failovers, bad_gateway) == (0, 0)
    for n in (0, 1):  # and each process was called straight, over REST and gRPC
        assert got.calls(f"rest{n}") > 100
        assert got.calls(f"grpc{n}") > 100

    runs = ["cd", "cd-copy", "dy", "pri", "rnd", "cu", "cu-copy"]
    _assert_same_stores(redises.cluster.url, redises.single.url, runs)
    _no_errors_logged([single, *served])


def test_a_process_killed_mid_run_loses_nothing_and_applies_nothing_twice(
    redises: Redises,
) -> None:
    redises.flush()
    with ExitStack() as stack:
        doors, single = _single_doors(stack, redises.single.url)
        expected = kill_workload(doors, crash=False)
    with ExitStack() as stack:
        doors, balancer, served = _two_processes(stack, redises.cluster.url)
        victim = served[0]

        def kill() -> None:
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(timeout=10)

        run_id, step = LOST
        balancer.arm_kill(
            lambda method, path, body: (
                method == "POST"
                and path in (f"/v1/runs/{run_id}/results", f"/v1/runs/{run_id}/advance")
                and body.startswith(f'{{"step":{step},'.encode())
            ),
            0,
            kill,
        )
        got = kill_workload(doors, crash=True)
        stats = (list(balancer.served), balancer.killed_at, balancer.failovers)
        bad_gateway = balancer.bad_gateway
    _assert_same_transcripts(expected, got)

    assert victim.process.returncode == -signal.SIGKILL
    served_by, killed_at, failovers = stats
    assert killed_at is not None  # the crash happened, after process 0 applied the report
    assert served_by[0] == killed_at[0]  # nothing reached the dead process afterwards
    assert served_by[1] - killed_at[1] > 50  # the run went on, on the survivor
    assert killed_at[0] > 50  # after both had served for a while
    assert failovers > 0  # the balancer tried the dead process and moved on
    assert bad_gateway == 0
    assert sum(served_by) == got.calls("lb") + 1  # the retry of the lost answer
    _assert_same_stores(redises.cluster.url, redises.single.url, [s.run_id for s in KILL_RUNS])
    _no_errors_logged([single, served[1]])

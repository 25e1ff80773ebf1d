"""A bounded fault test (issue 19): two trainers using the SDK's defaults only (``RestClient(url)``
and ``GrpcClient(target)``, no retry policy given) step their runs while redis-server is killed
with -9 twice and ``cdas serve`` is killed with -9 twice (each brought back on the same port about
a second later). No error may escape the clients, and each run's final state must equal the same
steps replayed on the library: the same batches, every result applied exactly once.

Redis runs with ``appendfsync always``: a result the service acknowledged is on disk, so the
restarted server holds it (that is the deployment the README asks for)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import cdas
from cdas.client import GrpcClient, RestClient
from cdas.service.process import ServeProcess
from tests.conftest import assert_same_state, logical_state
from tests.redis_servers import RedisServer, free_port
from tests.services import serve_process
from tests.test_service_clients import Trainer, _results, _without_duplicates

OUTAGE_SECONDS = 1.0


class Served:
    """``cdas serve`` on fixed ports, so that a restarted process answers the same clients."""

    def __init__(self, stack: ExitStack, store: str) -> None:
        self.stack = stack
        self.store = store
        self.port, self.grpc_port = free_port(), free_port()
        self.process: ServeProcess = self._start()

    def _start(self) -> ServeProcess:
        ports = ("--port", str(self.port), "--grpc-port", str(self.grpc_port))
        return self.stack.enter_context(serve_process("--store", self.store, *ports))

    def kill_and_restart(self) -> None:
        self.process.terminate(signal.SIGKILL)
        time.sleep(OUTAGE_SECONDS)
        self.process = self._start()


def wait_for(trainers: list[Trainer], more: int, timeout: float = 60) -> None:
    """Until every trainer has done ``more`` further steps (failing on a trainer's error)."""
    goal = [len(t.steps) + more for t in trainers]
    deadline = time.monotonic() + timeout
    while any(len(t.steps) < g for t, g in zip(trainers, goal, strict=True)):
        assert all(t.error is None for t in trainers), [t.error for t in trainers]
        assert time.monotonic() < deadline, "the trainers stopped making progress"
        time.sleep(0.02)


@contextmanager
def redis_with_aof(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory, None, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_default_clients_ride_out_kills_of_redis_and_of_the_service(tmp_path: Path) -> None:
    with redis_with_aof(tmp_path / "redis") as redis, ExitStack() as stack:
        served = Served(stack, redis.url)
        rest = stack.enter_context(RestClient(f"http://127.0.0.1:{served.port}"))
        rpc = stack.enter_context(GrpcClient(f"127.0.0.1:{served.grpc_port}"))
        assert rest.retry.budget == rpc.retry.budget == 30.0  # the defaults, nothing tuned
        trainers = [Trainer(rest, "rest-run", "cdas", 4), Trainer(rpc, "grpc-run", "random", 4)]
        for trainer in trainers:
            trainer.start()
        wait_for(trainers, 3)

        def kill_redis() -> None:
            redis.kill()
            time.sleep(OUTAGE_SECONDS)
            redis.start()

        faults: list[Callable[[], None]] = [
            kill_redis,
            served.kill_and_restart,
            kill_redis,
            served.kill_and_restart,
        ]
        for fault in faults:
            fault()
            wait_for(trainers, 3)
        for trainer in trainers:
            trainer.stop_after.set()
            trainer.join(timeout=60)
            assert trainer.error is None, trainer.error
        remote = {t.run_id: (rest.get_run(t.run_id), rest.snapshot(t.run_id)) for t in trainers}

    library = cdas.Coordinator(cdas.MemoryStore())
    for trainer in trainers:
        library.put_run(trainer.run_id, strategy=trainer.strategy, seed=7, prompts=500)
        for step, (_, _, prompt_ids, outcome) in enumerate(trainer.steps):
            assert library.next_batch(trainer.run_id, step, 16).prompt_ids == prompt_ids
            expected = library.report_results(trainer.run_id, step, _results(step, prompt_ids))
            assert outcome.competence == expected.competence, (trainer.run_id, step)
        info, snapshot = remote[trainer.run_id]
        assert info.results == library.get_run(trainer.run_id).results
        assert info.step == len(trainer.steps) - 1
        replayed = cdas.Coordinator(cdas.MemoryStore())
        replayed.restore(trainer.run_id, snapshot)
        assert_same_state(
            _without_duplicates(logical_state(replayed, trainer.run_id)),
            _without_duplicates(logical_state(library, trainer.run_id)),
        )

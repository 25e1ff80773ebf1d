"""``cdas demo``: the coordinator on the embedded store, simulated trainers driving it over REST.

It serves REST and gRPC in this process (a background thread), registers the 12,000 prompts of
``math12k`` (ids: row indexes), and trains one twin per strategy against the service, all at once,
so the runs can be watched while they move on the built-in page at ``/`` (or
``GET /v1/runs/{run}/state``). It ends with the table
and the plots, shows what CDAS chose at its last step, and keeps serving until Ctrl-C (``--exit``:
stop when done).

With ``coordinator`` set (``cdas demo --coordinator URL``) it serves nothing: it is the simulated
trainer of the stack's CPU profile, training the same runs against that coordinator (waiting for it
to come up), and it exits when the training ends. Its runs are created with ``put_run``, which finds
them unchanged on a restart; a restarted trainer replays steps whose batches and results the
coordinator already holds, and those results count as duplicates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cdas
from cdas.client.rest import RestClient
from cdas.client.retry import RetryPolicy
from cdas.service.background import BackgroundService
from cdas.service.settings import ServiceSettings
from cdas.sim import arms, dataset, experiment, summary
from cdas.sim.progress import Progress
from cdas.sim.trainer import StepRecord
from cdas.sim.twin import TwinParams

ARMS = ("cdas", "random", "prioritized", "dynamic", *arms.VARIANTS)
"""What the demo trains by default: the paper's strategies and the named CDAS variants."""


@dataclass(frozen=True)
class DemoOptions:
    strategies: Sequence[str] = ARMS
    steps: int = 110
    data: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 50051
    out: Path = Path("demo-out")
    band_sample: int = 16
    exit_when_done: bool = False
    coordinator: str | None = None
    """A running coordinator's REST URL: train against it instead of serving one."""
    token: str | None = None
    ca: str | None = None
    """With an https ``coordinator``: the CA bundle (PEM) that signs its certificate."""


def run_demo(options: DemoOptions, wait: threading.Event | None = None) -> int:
    """Run the demo; with ``exit_when_done`` False, serve until Ctrl-C (or ``wait`` is set)."""
    data = dataset.load(options.data)
    service: BackgroundService | None = None
    if options.coordinator:
        rest = options.coordinator.rstrip("/")
    else:
        settings = ServiceSettings(
            host=options.host, port=options.port, grpc_port=options.grpc_port
        )
        service = BackgroundService(cdas.Coordinator(cdas.MemoryStore()), settings)
        bound = service.start()
        rest = f"http://{bound.host}:{bound.port}"
    exp = experiment.Experiment(
        strategies=list(options.strategies),
        seeds=1,
        steps=options.steps,
        params=TwinParams().with_(prompts=len(data)),
        band_sample=options.band_sample,
        prefix="demo",
        prompt_ids=data.ids,
    )
    first = exp.run_id(exp.strategies[0], 0)
    where = (
        f"cdas demo: the simulated trainer, against the coordinator at {rest}\n"
        if service is None
        else f"cdas demo: the coordinator serves on the embedded store\n"
        f"  gRPC   {bound.host}:{bound.grpc_port}\n"
    )
    print(
        f"{where}"
        f"  page   {rest}/   (open it: the runs train live there)\n"
        f"  REST   {rest}   (runs: {rest}/v1/runs, API: {rest}/docs, metrics: {rest}/metrics)\n"
        f"  watch  curl {rest}/v1/runs/{first}/state\n"
        f"training {len(exp.strategies)} simulated GRPO runs on math12k's {len(data):,} prompts "
        f"(B = {exp.params.batch}, G = {exp.params.group}, {exp.steps} steps) over REST: "
        f"{', '.join(exp.run_id(s, 0) for s in exp.strategies)}\n",
        flush=True,
    )
    try:
        with RestClient(
            rest, options.token, retry=RetryPolicy(for_seconds=120), ca=options.ca
        ) as client:
            progress = Progress(exp.total_steps(), "training")
            lock = threading.Lock()

            def tick(record: StepRecord) -> None:
                with lock:
                    progress.advance(1, f"{record.strategy} step {record.step}")

            started = time.perf_counter()
            records = experiment.run_parallel(client, exp, on_step=tick)
            progress.close()
            elapsed = time.perf_counter() - started
            rows, pictures = experiment.save(records, options.out, "(cdas demo)")
            print(f"\ntrained in {elapsed:.0f} s. Summary (seed 0):\n")
            print(summary.text_table(rows))
            print(
                "zero-grad share: groups whose 8 answers were all right or all wrong (no GRPO "
                "gradient); accuracy: the twin's held-out benchmark;\nsteps to Random's: the first "
                "step at Random's final accuracy.\n"
            )
            _show_choice(client, exp, data)
        print(f"plots: {', '.join(str(p) for p in pictures)}\ntables: {options.out}/summary.md")
        if options.exit_when_done or service is None:
            return 0
        print(f"\nstill serving the page at {rest}/ (Ctrl-C to stop)", flush=True)
        try:
            (wait or threading.Event()).wait()
        except KeyboardInterrupt:
            print()
        return 0
    finally:
        if service is not None:
            service.stop()


def _show_choice(client: RestClient, exp: experiment.Experiment, data: dataset.Dataset) -> None:
    """What CDAS picked at its last step: a few questions with their difficulty."""
    if "cdas" not in exp.strategies:
        return
    run_id = exp.run_id("cdas", 0)
    batch = client.next_batch(run_id, exp.steps, exp.params.batch)  # idempotent: the same batch
    print(f"CDAS's batch at step {exp.steps} (competence {batch.competence:+.3f}), three of them:")
    for prompt_id in batch.prompt_ids[:3]:
        info = client.get_prompt(run_id, prompt_id)
        question = data.questions[int(prompt_id)].replace("\n", " ")
        print(f"  #{prompt_id:<6} D = {info.difficulty:+.3f}  {question[:90]}")
    print()

"""``cdas grpo``'s work once the flags are checked: the runs, with progress, then the outputs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from cdas.core.errors import CdasError
from cdas.sim import summary
from cdas.sim.progress import Progress
from cdas_grpo import report
from cdas_grpo.bench import Plan, client_for, run
from cdas_grpo.records import GrpoStep
from cdas_grpo.run import RungRow
from cdas_grpo.warmstart import WarmReport


def check_coordinator(plan: Plan) -> None:
    """Fail early, naming the URL, when the coordinator does not answer (after the retries)."""
    if plan.url is None:
        return
    client = client_for(plan)
    try:
        client.list_runs()
    except CdasError as exc:
        raise SystemExit(
            f"cdas grpo: the coordinator at {plan.url} does not answer: {exc}"
        ) from exc
    finally:
        client.close()


def execute(plan: Plan, page: Path | None = None, argv: Sequence[str] = ()) -> int:
    check_coordinator(plan)
    settings = plan.settings
    warm_bar: list[Progress] = []

    def warm_tick(step: int) -> None:
        if not warm_bar:
            warm_bar.append(Progress(settings.warm_steps, "warm start"))
        warm_bar[0].advance(1, f"step {step}")

    bar: list[Progress] = []

    def tick(record: GrpoStep) -> None:
        if not bar:  # started with the first step, so the warm start is not in its clock
            bar.append(Progress(len(plan.pairs()) * settings.steps, "grpo"))
        bar[0].advance(1, f"{record.strategy} s{record.seed} step {record.step}")

    try:
        warm, records, rungs = run(plan, warm_tick, tick)
    except CdasError as exc:
        raise SystemExit(f"cdas grpo: the coordinator failed: {exc}") from exc
    for each in (*warm_bar, *bar):
        each.close()
    return finish(plan, warm, records, rungs, page, argv)


def replot(plan: Plan, page: Path | None) -> int:
    """The outputs again from ``plan.out``'s ``steps.csv``, ``warmstart.json`` and
    ``settings.json`` (a page's prose changed, say), training nothing."""
    import dataclasses
    import json

    from cdas_grpo.settings import Settings
    from cdas_grpo.warmstart import WarmReport

    try:
        records = report.read_steps(plan.out / "steps.csv")
        rungs = report.read_rungs(plan.out / "rungs.csv")
        warm = WarmReport(**json.loads((plan.out / "warmstart.json").read_text()))
        settings = Settings(**json.loads((plan.out / "settings.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"cdas grpo --replot: {plan.out} holds no complete run: {exc}") from exc
    strategies = list(dict.fromkeys(r.strategy for r in records))
    seeds = len({r.seed for r in records})
    made = plan.out / "command.json"
    meta = json.loads(made.read_text()) if made.is_file() else {}
    plan = dataclasses.replace(
        plan,
        settings=settings,
        strategies=strategies,
        seeds=seeds,
        device=meta.get("device", plan.device),
        workers=meta.get("workers", plan.workers),
    )
    argv = meta.get("argv", ["grpo", "--out", str(plan.out)])
    return finish(plan, warm, records, rungs, page, argv)


def finish(
    plan: Plan,
    warm: WarmReport,
    records: list[GrpoStep],
    rungs: list[RungRow],
    page: Path | None,
    argv: Sequence[str],
) -> int:
    import json

    rows, pictures = report.save(records, rungs, warm, plan.settings, plan.out)
    made = {"argv": list(argv), "device": plan.device, "workers": plan.workers}
    (plan.out / "command.json").write_text(json.dumps(made) + "\n")
    print(report.start_line(warm))
    print(summary.text_table(rows, summary.SECONDS))
    print(f"wrote {plan.out}/steps.csv, summary.csv, summary.md and {len(pictures)} plots")
    if page is not None:
        from cdas_grpo import page as results_page

        results_page.write(page, plan, warm, records, rungs, command=" ".join(argv))
        print(f"wrote {page}")
    sys.stdout.flush()
    return 0

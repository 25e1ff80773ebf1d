"""The built-in dashboard page (``GET /``) in a real headless Chromium, Debian's ``chromium`` and
``chromium-driver`` driven by Selenium (no downloaded browser, no Selenium Manager).

A coordinator serves the page while the training twin trains three runs over REST in a background
thread. The page must draw every chart with data, grow its lines as the runs train (live polling),
and, once the training is paused, show exactly the API's numbers: the competence marker, the
histogram's counts, the points of the competence line, the runs, the frontier prompts; clicking a
run selects it (``#run=<id>``). The screenshot is left in ``build/test-artifacts/page.png`` for a
person to look at. A second test puts the service behind a bearer token: the page asks for it,
says when it is wrong, and keeps the right one.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import cdas
from cdas.client import RestClient
from cdas.service.access import Scope
from cdas.service.settings import ServiceSettings
from cdas.sim.demo import DemoOptions, run_demo
from cdas.sim.experiment import Experiment, run_parallel
from cdas.sim.trainer import StepRecord
from cdas.sim.twin import TwinParams
from tests.redis_servers import free_port
from tests.services import rest_url, running_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
)
LINE_CHARTS = ("competence", "pass-rate", "zero-gradient")
STRATEGIES = ("cdas", "random", "prioritized")
TOKEN = "page-test-token"

T = TypeVar("T")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Debian Chromium; fails (never skips) when it is not installed."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.is_file():
            pytest.fail(
                f"{path} is missing: install Debian's {package} (apt-get install {package})"
            )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=DriverService(executable_path=str(CHROMEDRIVER)), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver, what: str, check: Callable[[WebDriver], T | None], timeout: float = 10
) -> T:
    """``check``'s first truthy answer within ``timeout`` seconds; fails naming ``what``."""
    try:
        found = WebDriverWait(driver, timeout, poll_frequency=0.1).until(check, what)
    except Exception as exc:  # TimeoutException, or the check's own error on its last try
        pytest.fail(f"page never showed {what} within {timeout} s: {exc}")
    assert found is not None  # until() returns only a truthy answer
    return found


def lines(driver: WebDriver, chart: str) -> dict[str, int]:
    """run id -> points drawn, for the lines of ``chart``."""
    found: Any = driver.execute_script(
        "const out = {};"
        "for (const l of document.querySelectorAll("
        "  `svg[data-chart='${arguments[0]}'] [data-run][data-points]`))"
        "  out[l.dataset.run] = Number(l.dataset.points);"
        "return out;",
        chart,
    )
    return {str(k): int(v) for k, v in found.items()}


def marker(driver: WebDriver) -> tuple[str | None, float | None]:
    """(run the histogram shows, the competence marker's value)."""
    found: Any = driver.execute_script(
        "const svg = document.querySelector(\"svg[data-chart='difficulty']\");"
        "const m = svg && svg.querySelector(\"[data-marker='competence']\");"
        "return [svg && svg.dataset.run, m && m.dataset.value];"
    )
    run, value = found
    return run, None if value is None else float(value)


class Training:
    """The training twin over REST in a background thread, each step slowed by ``delay`` so the
    page sees it move; ``pause`` parks every run after its current step (the API's numbers then
    hold still), ``stop`` ends it."""

    class StoppedError(Exception):
        pass

    def __init__(self, url: str, experiment: Experiment, delay: float) -> None:
        self.url, self.experiment, self.delay = url, experiment, delay
        self.cond = threading.Condition()
        self.paused = self.stopped = False
        self.parked = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="page-training", daemon=True)

    def _run(self) -> None:
        try:
            with RestClient(self.url) as client:
                run_parallel(client, self.experiment, on_step=self._on_step)
        except Training.StoppedError:
            pass
        except BaseException as exc:
            self.error = exc

    def _on_step(self, record: StepRecord) -> None:
        time.sleep(self.delay)
        with self.cond:
            while self.paused and not self.stopped:
                self.parked += 1
                self.cond.notify_all()
                self.cond.wait()
                self.parked -= 1
            if self.stopped:
                raise Training.StoppedError

    def start(self) -> None:
        self.thread.start()

    def pause(self) -> None:
        runs = len(self.experiment.strategies) * self.experiment.seeds
        with self.cond:
            self.paused = True
            parked = self.cond.wait_for(lambda: self.parked == runs, timeout=15)
        assert parked, f"only {self.parked} of {runs} runs paused: {self.error!r}"

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.thread.join(timeout=30)


@contextlib.contextmanager
def training(url: str, experiment: Experiment, delay: float) -> Iterator[Training]:
    t = Training(url, experiment, delay)
    t.start()
    try:
        yield t
    finally:
        t.stop()
    assert t.error is None, f"the simulated training failed: {t.error!r}"


def test_page_draws_the_runs_live_and_matches_the_api(browser: WebDriver) -> None:
    experiment = Experiment(
        strategies=STRATEGIES,
        seeds=1,
        steps=5000,  # far more than the test lasts: it is stopped, never finishes
        params=TwinParams().with_(prompts=300, heldout=200, batch=32),
        band_sample=0,
        prefix="page",
    )
    run_ids = sorted(experiment.run_id(s, 0) for s in STRATEGIES)
    with (
        running_service(cdas.Coordinator(cdas.MemoryStore())) as service,
        httpx.Client(base_url=rest_url(service.bound), timeout=10) as http,
        training(rest_url(service.bound), experiment, delay=0.08) as trainer,
    ):

        def api(path: str) -> Any:
            answer = http.get(path)
            assert answer.status_code == 200, answer.text
            return answer.json()

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            runs = api("/v1/runs")["runs"]
            if len(runs) == len(run_ids) and all((r["step"] or 0) >= 3 for r in runs):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the training never got going: {trainer.error!r}")

        browser.get(rest_url(service.bound) + "/")

        # every line chart has a line with points for every run
        for chart in LINE_CHARTS:

            def drawn(d: WebDriver, chart: str = chart) -> bool:
                found = lines(d, chart)
                return sorted(found) == run_ids and min(found.values()) >= 3

            wait_for(browser, f"a {chart} line with points for each run", drawn)
        first = lines(browser, "competence")

        # live: the lines grow while the runs train (a round every 2 s)
        wait_for(
            browser,
            "the competence lines growing",
            lambda d: all(n > first[run] for run, n in lines(d, "competence").items()),
            timeout=12,
        )

        # the runs table lists every run; the first is selected by default
        rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr[data-run]")
        assert [r.get_attribute("data-run") for r in rows] == run_ids
        for row, run_id in zip(rows, run_ids, strict=True):
            assert run_id.split("-")[1] in row.text  # the strategy column
        assert "selected" in (rows[0].get_attribute("class") or "")

        # paused, the API holds still and the page must show exactly its numbers
        trainer.pause()
        selected = run_ids[0]

        def shows_state(run_id: str) -> dict[str, Any]:
            state: dict[str, Any] = api(f"/v1/runs/{run_id}/state?frontier=10")
            wait_for(
                browser,
                f"the competence marker of {run_id} at {state['competence']}",
                lambda d: marker(d) == (run_id, state["competence"]),
            )
            _, value = marker(browser)
            assert value is not None
            assert -1 <= value <= 1
            bars: Any = browser.execute_script(
                "return [...document.querySelectorAll("
                "  \"svg[data-chart='difficulty'] rect[data-bin]\")"
                "].map(r => Number(r.dataset.count));"
            )
            assert bars == state["histogram"]["counts"]
            assert len(bars) == 40
            assert sum(bars) > 0
            wait_for(
                browser,
                f"every step of {run_id} on the competence line",
                lambda d: lines(d, "competence").get(run_id) == len(state["history"]),
            )
            frontier_ids = [p["prompt_id"] for p in state["frontier"]]
            assert len(frontier_ids) == 10
            wait_for(
                browser, f"the frontier of {run_id}", lambda d: _frontier_rows(d) == frontier_ids
            )
            return state

        shows_state(selected)
        for run in api("/v1/runs")["runs"]:
            row = browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{run['run_id']}']")
            assert f"{run['competence']:+.4f}".replace("-", "\u2212") in row.text

        # clicking a run selects it and keeps the choice in the address
        other = run_ids[-1]
        browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{other}']").click()
        wait_for(browser, f"#run={other}", lambda d: d.execute_script("return location.hash"))
        assert browser.execute_script("return location.hash") == f"#run={other}"
        shows_state(other)
        browser.find_element(By.CSS_SELECTOR, f"#runs tr[data-run='{selected}']").click()
        state = shows_state(selected)
        assert math.isfinite(state["competence"])

        # offline: every file the page loaded came from the coordinator
        loaded: Any = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);"
        )
        assert loaded, "the page loaded nothing"
        assert all(u.startswith(rest_url(service.bound)) for u in loaded), loaded
        # light: once a run's history is read, a poll asks only for its latest steps
        tails = [u for u in loaded if f"/v1/runs/{selected}/state" in u and "history_from=" in u]
        assert tails, [u for u in loaded if "/state" in u]
        logged: Any = browser.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logged if e["level"] == "SEVERE"]
        assert not errors, errors
        assert browser.find_element(By.ID, "empty").is_displayed() is False

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "page.png"
        assert browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")


def test_page_asks_for_the_token_and_keeps_it(browser: WebDriver) -> None:
    settings = ServiceSettings(token=TOKEN, port=0, grpc_port=0, grace_seconds=2)
    with running_service(cdas.Coordinator(cdas.MemoryStore()), settings) as service:
        url = rest_url(service.bound)
        with RestClient(url, token=TOKEN) as client:
            client.put_run("guarded", strategy="cdas", prompts=50)
        browser.get(url + "/")

        token = wait_for(browser, "the token input", lambda d: _displayed(d, "token"))
        assert not browser.find_element(By.ID, "content").is_displayed()

        token.send_keys("wrong-token\n")
        wait_for(
            browser,
            "that the token was refused",
            lambda d: "refused" in d.find_element(By.ID, "token-error").text,
        )

        wait_for(browser, "the token input", lambda d: _displayed(d, "token")).send_keys(
            TOKEN + "\n"
        )
        wait_for(browser, "the run behind the token", lambda d: _run_rows(d) == ["guarded"])
        assert not browser.find_element(By.ID, "auth").is_displayed()
        assert browser.execute_script("return localStorage.getItem('cdas.token')") == TOKEN

        # the token is kept: a reload goes straight to the runs
        browser.refresh()
        wait_for(browser, "the run after a reload", lambda d: _run_rows(d) == ["guarded"])
        assert not browser.find_element(By.ID, "auth").is_displayed()


def test_page_shows_what_a_scoped_token_may_see(browser: WebDriver) -> None:
    """A ``write:team-a.`` token sees its team's runs only; a ``read`` token sees every run."""
    scoped = {"team-token": (Scope.parse("write:team-a."),), "read-token": (Scope.parse("read"),)}
    settings = ServiceSettings(
        token=TOKEN, scoped_tokens=scoped, port=0, grpc_port=0, grace_seconds=2
    )
    with running_service(cdas.Coordinator(cdas.MemoryStore()), settings) as service:
        url = rest_url(service.bound)
        with RestClient(url, token=TOKEN) as client:
            client.put_run("team-a.run", strategy="cdas", prompts=50)
            client.put_run("other-run", strategy="random", prompts=50)
        browser.get(url + "/")
        wait_for(browser, "the token input", lambda d: _displayed(d, "token")).send_keys(
            "team-token\n"
        )
        wait_for(browser, "the team's run only", lambda d: _run_rows(d) == ["team-a.run"])
        browser.execute_script("localStorage.setItem('cdas.token', 'read-token')")
        browser.refresh()
        wait_for(
            browser,
            "every run for the read token",
            lambda d: sorted(_run_rows(d), key=str) == ["other-run", "team-a.run"],
        )


def test_page_says_when_there_are_no_runs(browser: WebDriver) -> None:
    with running_service(cdas.Coordinator(cdas.MemoryStore())) as service:
        browser.get(rest_url(service.bound) + "/")
        empty = wait_for(browser, "the empty state", lambda d: _displayed(d, "empty"))
        assert "No runs yet" in empty.text
        assert not browser.find_element(By.ID, "content").is_displayed()


def _displayed(driver: WebDriver, element_id: str) -> Any:
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else None


def _run_rows(driver: WebDriver) -> list[str | None]:
    if not _displayed(driver, "content"):
        return []
    return [
        r.get_attribute("data-run")
        for r in driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr[data-run]")
    ]


def _frontier_rows(driver: WebDriver) -> list[str | None]:
    return [
        r.get_attribute("data-prompt")
        for r in driver.find_elements(By.CSS_SELECTOR, "#frontier tbody tr[data-prompt]")
    ]


def test_the_demo_prints_the_page_and_the_page_shows_its_runs(
    browser: WebDriver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cdas demo`` as a user meets it: it prints the page's address, and that page lists the
    demo's runs with their lines drawn."""
    options = DemoOptions(
        strategies=("cdas", "random"),
        steps=4,
        port=free_port(),
        grpc_port=free_port(),
        out=tmp_path / "demo-out",
    )
    release = threading.Event()
    demo = threading.Thread(target=run_demo, args=(options, release), daemon=True)
    demo.start()
    try:
        deadline = time.monotonic() + 120
        printed = ""
        while "still serving the page" not in printed:
            assert demo.is_alive(), f"the demo stopped:\n{printed}"
            assert time.monotonic() < deadline, f"the demo never finished:\n{printed}"
            time.sleep(0.2)
            printed += capsys.readouterr().out
        page = re.search(r"^\s*page\s+(http://\S+/)\s", printed, re.MULTILINE)
        assert page is not None, printed
        browser.get(page.group(1))
        runs = ["demo-cdas-s0", "demo-random-s0"]

        def listed(d: WebDriver) -> list[str] | None:
            rows = d.find_elements(By.CSS_SELECTOR, "#runs [data-run]")
            return [str(r.get_attribute("data-run")) for r in rows] or None

        def drawn(d: WebDriver) -> dict[str, int] | None:
            found = lines(d, "competence")
            return found if set(found) == set(runs) else None

        assert sorted(wait_for(browser, "the demo's runs in the table", listed)) == runs
        points = wait_for(browser, "a competence line per demo run", drawn)
        assert all(n == options.steps for n in points.values()), points
    finally:
        release.set()
        demo.join(timeout=60)
    assert not demo.is_alive()


def test_page_shows_how_many_prompts_the_selected_run_retired(browser: WebDriver) -> None:
    """A cdas run with ``retire_after`` says how many prompts it keeps out of selection; a run
    with none retired says nothing of it."""
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    retiring = {"retire_after": 1, "warmup": False}
    coordinator.put_run("a-retiring", params=retiring, prompts=20, seed=1)
    coordinator.put_run("b-plain", prompts=20, seed=1)
    for run_id in ("a-retiring", "b-plain"):
        batch = coordinator.next_batch(run_id, 0, 6)
        coordinator.report_results(
            run_id, 0, [{"prompt_id": p, "pass_rate": 0.0, "total": 8} for p in batch.prompt_ids]
        )
    assert coordinator.get_state("a-retiring").retired == 6

    def note(d: WebDriver) -> str:
        return str(d.find_element(By.ID, "hist-note").text)

    with running_service(coordinator) as service:
        browser.get(rest_url(service.bound) + "/")
        wait_for(browser, "the first run selected", lambda d: _run_rows(d)[:1] == ["a-retiring"])
        wait_for(browser, "the retired count", lambda d: "\u00b7 6 retired" in note(d))
        browser.find_element(By.CSS_SELECTOR, "#runs tr[data-run='b-plain']").click()
        wait_for(browser, "the plain run", lambda d: marker(d)[0] == "b-plain")
        wait_for(browser, "the plain run's note", lambda d: "6 of 20" in note(d))
        assert "retired" not in note(browser)

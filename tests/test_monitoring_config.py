"""The committed monitoring files (deploy/prometheus, deploy/grafana) against the real service.

A dashboard or an alert that names a metric the service does not export shows "No data" or never
fires, and nothing else notices: so every PromQL expression in the rules and in every dashboard
panel is checked here against the names a REAL coordinator exports at ``GET /metrics`` after real
traffic over REST and gRPC (errors included, since error series only exist once an error
happened). promtool (Debian's ``prometheus`` package) checks the config, the rules, that every
dashboard query parses, and that the exposition itself is lint-clean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import cdas
from cdas.client.grpc import GrpcClient
from cdas.client.rest import RestClient
from cdas.core.errors import STATUS, RunNotFoundError
from tests.prometheus_server import (
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    ROOT,
    load_yaml,
    promtool,
)
from tests.services import grpc_target, rest_url, running_service

DASHBOARD = GRAFANA_DIR / "dashboards" / "cdas.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "cdas.yml"
RULES = PROMETHEUS_DIR / "rules.yml"

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus itself writes for each target; the only names allowed beyond the service's."""

# ---------------------------------------------------------------- PromQL, just enough to read names

GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$run": "run-a",
}
"""Grafana's variables as Grafana would interpolate them (``$run`` as one run id)."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTIONS = _words(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv exp floor histogram_count histogram_fraction histogram_quantile
    histogram_sum holt_winters hour idelta increase irate label_join label_replace last_over_time
    ln log10 log2 max_over_time min_over_time minute month pi predict_linear present_over_time
    quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt
    stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    """
)
"""PromQL's functions and aggregation operators (Prometheus 2.42): a name followed by ``(``."""

KEYWORDS = _words("by without on ignoring group_left group_right bool offset and or unless inf nan")
"""PromQL's keywords, which look like names but are not metrics."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_CLAUSE = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE
)
_RANGE = re.compile(r"\[[^\[\]]*\]")
_OFFSET = re.compile(r"\boffset\s+-?\w+", re.IGNORECASE)
_AT = re.compile(r"@\s*(?:start\s*\(\s*\)|end\s*\(\s*\)|[0-9.]+)")
_NUMBER = re.compile(r"(?<![\w:.])(?:0x[0-9a-f]+|\d*\.?\d+(?:e[+-]?\d+)?)(?![\w:])", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")


def substitute(expr: str) -> str:
    """Interpolate Grafana's variables (``$x`` and ``${x}`` / ``${x:format}``) the way Grafana
    would; an unknown variable is an error, since promtool and Prometheus would not see it."""
    out = re.sub(r"\$\{(\w+)(?::\w+)?\}", r"$\1", expr)
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        out = out.replace(name, GRAFANA_VARIABLES[name])
    leftover = re.search(r"\$[a-zA-Z_]\w*", _STRING.sub('""', out))
    assert leftover is None, f"unknown Grafana variable {leftover.group()} in {expr!r}"
    leftover = re.search(r"\$[a-zA-Z_]\w*", out)
    assert leftover is None, f"unknown Grafana variable {leftover.group()} in a string: {expr!r}"
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects. Strings, label matchers, grouping clauses,
    ranges, offsets, numbers, keywords and function calls are stripped; what is left are the
    selectors' names. An unknown function is an error (a typo there is no metric either)."""
    names = {m.group(2)[1:-1] for m in _LABEL_MATCHER.finditer(expr) if m.group(1) == "__name__"}
    s = _STRING.sub('""', expr)
    s = re.sub(r"#[^\n]*", " ", s)
    s = _MATCHERS.sub(" ", s)
    s = _CLAUSE.sub(" ", s)
    s = _RANGE.sub(" ", s)
    s = _OFFSET.sub(" ", s)
    s = _AT.sub(" ", s)
    s = _NUMBER.sub(" ", s)
    for m in _IDENTIFIER.finditer(s):
        word = m.group()
        if s[m.end() :].lstrip().startswith("("):
            if word.lower() not in FUNCTIONS:
                raise ValueError(f"unknown PromQL function {word!r} in {expr!r}")
            continue
        if word.lower() not in KEYWORDS:
            names.add(word)
    return names


def label_names(expr: str) -> set[str]:
    """The label names an expression matches on or groups by."""
    s = _STRING.sub(lambda m: '"' + "x" * (len(m.group()) - 2) + '"', expr)
    labels = {m.group(1) for m in _LABEL_MATCHER.finditer(expr)}
    for clause in _CLAUSE.finditer(s):
        labels |= {name.strip() for name in clause.group(2).split(",") if name.strip()}
    return labels


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*$")


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="cdas"} == bool 0', {"up"}),
        (
            'sum by (run) (rate(a_total{run=~"x|by", code!="on(b)"}[5m] offset 1h))'
            " / on (run) group_left (strategy) info_metric",
            {"a_total", "info_metric"},
        ),
        (
            "histogram_quantile(0.99, sum without (instance) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
        ),
        ("max(a) by (run) > 0.6 unless ignoring (x) b", {"a", "b"}),
        ('label_replace(x, "dst", "$1", "src", "(.*)") * 1e-3', {"x"}),
        ("sum_over_time(m[5m:1m]) and level:m:rate5m", {"m", "level:m:rate5m"}),
        ('{__name__="named"} + p99_metric', {"named", "p99_metric"}),
        ('count_values("v", q) or vector(0) # comment names_nothing\n', {"q"}),
    ],
)
def test_metric_names_reads_the_selectors_only(expr: str, names: set[str]) -> None:
    """The extractor itself, on the forms that trip naive ones (keywords, clauses, strings)."""
    assert metric_names(substitute(expr)) == names


def test_metric_names_rejects_an_unknown_function() -> None:
    with pytest.raises(ValueError, match="rates"):
        metric_names("rates(x[5m])")


def test_substitute_knows_grafanas_variables_only() -> None:
    assert substitute('x{run=~"${run:regex}"}[$__range]') == 'x{run=~"run-a"}[1h]'
    with pytest.raises(AssertionError, match="unknown Grafana variable"):
        substitute("rate(x[$__nope])")


# ---------------------------------------------------------------- a real scrape


def _drive(rest: RestClient, client: GrpcClient) -> None:
    """Real traffic: a run, steps over REST then gRPC (a duplicate report among them), a state
    read, and one error on each transport (error series exist only once an error happened)."""
    rest.put_run("mon", strategy="cdas", prompts=64)
    doors: tuple[RestClient | GrpcClient, ...] = (rest, rest, client, client)
    for step, door in enumerate(doors, start=1):
        batch = door.next_batch("mon", step, 8)
        results = [
            {"prompt_id": p, "correct": k % 9, "total": 8} for k, p in enumerate(batch.prompt_ids)
        ]
        door.report_results("mon", step, results)
    client.report_results("mon", 4, results)  # a retry: counted as duplicates
    rest.get_state("mon")
    client.get_run("mon")
    for door in (rest, client):
        with pytest.raises(RunNotFoundError):
            door.get_run("no-such-run")


@pytest.fixture(scope="module")
def exposition() -> Iterator[str]:
    """The text of ``GET /metrics`` of a real coordinator after ``_drive``."""
    with running_service(cdas.Coordinator(cdas.MemoryStore())) as service:
        url = rest_url(service.bound)
        with RestClient(url) as rest, GrpcClient(grpc_target(service.bound)) as client:
            _drive(rest, client)
        response = httpx.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        yield response.text


def _series(text: str) -> Iterator[tuple[str, dict[str, str]]]:
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _IDENTIFIER.match(line)
        assert match is not None, line
        labels: dict[str, str] = {}
        if line[match.end() :].startswith("{"):
            body = line[match.end() + 1 : line.rindex("}")]
            labels = {m.group(1): json.loads(m.group(2)) for m in _LABEL_MATCHER.finditer(body)}
        yield match.group(), labels


@pytest.fixture(scope="module")
def exported(exposition: str) -> dict[str, set[str]]:
    """Series name -> label names, as they appear in the text: histograms are already there as
    their _bucket/_sum/_count series and gauge histograms as _bucket/_gcount/_gsum."""
    names: dict[str, set[str]] = {}
    for name, labels in _series(exposition):
        names.setdefault(name, set()).update(labels)
    return names


SPEC_SERIES: dict[str, set[str]] = {
    "cdas_build_info": {"version", "store"},
    "cdas_runs": set(),
    "cdas_run_info": {"run", "strategy"},
    "cdas_run_competence": {"run"},
    "cdas_run_step": {"run"},
    "cdas_run_prompts": {"run"},
    "cdas_run_prompts_seen": {"run"},
    "cdas_run_difficulty_mean": {"run"},
    "cdas_run_prompt_difficulty_bucket": {"run", "le"},
    "cdas_run_prompt_difficulty_gcount": {"run"},
    "cdas_run_prompt_difficulty_gsum": {"run"},
    "cdas_store_up": set(),
    "cdas_store_ping_seconds": set(),
    "cdas_ready": set(),
    "cdas_results_applied_total": {"run"},
    "cdas_results_duplicate_total": {"run"},
    "cdas_zero_gradient_groups_total": {"run"},
    "cdas_rollouts_total": {"run"},
    # no _sum/_count: a histogram with negative buckets has none (OpenMetrics; prometheus_client
    # leaves them out), its count is the +Inf bucket
    "cdas_batch_difficulty_bucket": {"run", "le"},
    "cdas_batch_pass_rate_bucket": {"run", "difficulty", "le"},
    "cdas_batch_pass_rate_sum": {"run", "difficulty"},
    "cdas_batch_pass_rate_count": {"run", "difficulty"},
    "cdas_request_duration_seconds_bucket": {"transport", "operation", "le"},
    "cdas_request_duration_seconds_sum": {"transport", "operation"},
    "cdas_request_duration_seconds_count": {"transport", "operation"},
    "cdas_request_errors_total": {"transport", "operation", "code"},
}
"""Every series of the issue's metrics spec (/tmp/spec/spec6.md) and its labels."""


def test_the_scrape_has_every_series_of_the_spec(exported: dict[str, set[str]]) -> None:
    """What the rules and the dashboard are written against is what the service exports."""
    missing = sorted(set(SPEC_SERIES) - set(exported))
    assert not missing, f"series the spec promises but /metrics lacks: {missing}"
    wrong = {n: (exported[n], want) for n, want in SPEC_SERIES.items() if exported[n] != want}
    assert not wrong, f"label names differ from the spec (got, spec): {wrong}"


def test_the_scrape_has_the_specs_label_values(exposition: str) -> None:
    """The values the dashboard relies on: transports, operations, error codes, the difficulty
    bins of Figure 6 and the buckets of the gauge histogram the heatmap draws."""
    series = list(_series(exposition))
    values: dict[tuple[str, str], set[str]] = {}
    for name, labels in series:
        for label, value in labels.items():
            values.setdefault((name, label), set()).add(value)
    assert values[("cdas_request_duration_seconds_count", "transport")] == {"rest", "grpc"}
    assert {"put_run", "next_batch", "report_results", "get_run", "get_state"} <= values[
        ("cdas_request_duration_seconds_count", "operation")
    ]
    assert values[("cdas_request_errors_total", "code")] == {"run_not_found"}
    assert values[("cdas_request_errors_total", "transport")] == {"rest", "grpc"}
    # the 10 bin centres; "none" (a prompt's first result, no difficulty yet) is the service's
    # addition to the spec, which the Figure 6 panel leaves out
    centres = {f"{-0.9 + 0.2 * k:.1f}" for k in range(10)}
    assert centres <= values[("cdas_batch_pass_rate_count", "difficulty")] <= centres | {"none"}
    batch_le = {float(v) for v in values[("cdas_batch_difficulty_bucket", "le")]}
    assert batch_le == {round(-0.9 + 0.1 * k, 1) for k in range(20)} | {float("inf")}
    # 40 bins of 0.05 over [-1, 1]: bounds -0.95 .. 0.95 and +Inf (an le="1" is redundant, D <= 1)
    prompt_le = {float(v) for v in values[("cdas_run_prompt_difficulty_bucket", "le")]}
    bounds = {round(-0.95 + 0.05 * k, 2) for k in range(39)} | {float("inf")}
    assert bounds <= prompt_le <= bounds | {1.0}


def test_promtool_check_metrics_is_clean(exposition: str) -> None:
    """Names, units, suffixes and help texts follow Prometheus's conventions (its own linter)."""
    checked = promtool("check", "metrics", stdin=exposition)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", checked.stdout
    assert checked.stderr.strip() == "", checked.stderr


# ---------------------------------------------------------------- prometheus.yml and rules.yml


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def test_promtool_check_config(tmp_path: Path) -> None:
    """The scrape config is valid as deployed: a copy with the rule file's path resolved (the
    copy lives elsewhere) passes promtool, which also checks the rule file it names."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(copy))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_scrape_config_points_at_the_compose_coordinator() -> None:
    """Job cdas scrapes the service docker-compose names ``coordinator`` on its REST port."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "cdas"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["coordinator:8000"]}]
    from tests.compose_stack import load_compose

    compose = load_compose()["services"]["coordinator"]
    assert "--port" not in compose["command"]  # cdas serve's REST port: 8000
    assert any(port.endswith(":8000") for port in compose["ports"]), compose["ports"]


def test_promtool_check_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_recording_rules_follow_the_naming_convention() -> None:
    """level:metric:operations, lower case; ``_total`` dropped once rate() is taken; the level
    is the labels kept by the outermost aggregation."""
    for rule in _rules():
        if "record" not in rule:
            continue
        name = rule["record"]
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name
        level, metric, _ = name.split(":")
        assert "_total" not in metric, name
        assert metric.startswith("cdas_"), name
        kept = {label for label in label_names(rule["expr"]) if label in {"run", "transport"}}
        kept |= {"operation"} & label_names(rule["expr"])
        assert set(level.split("_")) == kept, (name, kept)


def test_the_alerts_users_need_are_there() -> None:
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    assert set(alerts) >= {
        "CdasRunZeroGradientShareHigh",
        "CdasStoreDown",
        "CdasCoordinatorDown",
        "CdasServerErrorRatioHigh",
    }
    assert alerts["CdasRunZeroGradientShareHigh"]["for"] == "15m"
    assert "> 0.6" in alerts["CdasRunZeroGradientShareHigh"]["expr"]
    assert alerts["CdasStoreDown"]["expr"].strip() == "cdas_store_up == 0"
    assert alerts["CdasStoreDown"]["for"] == "1m"
    assert alerts["CdasCoordinatorDown"]["expr"].strip() == 'up{job="cdas"} == 0'
    for rule in alerts.values():
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


def test_every_rule_names_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    """Every rule's expression selects series the service exports, Prometheus's ``up``, or a
    series recorded by another rule of the file; and matches and groups only on real labels."""
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    known_labels = set().union(*exported.values()) | {"job", "instance"}
    for rule in _rules():
        expr = rule["expr"]
        unknown = metric_names(expr) - set(exported) - PROMETHEUS_OWN - recorded
        assert not unknown, f"{rule.get('record') or rule['alert']}: not exported: {unknown}"
        assert metric_names(expr), expr
        labels = label_names(expr) - known_labels
        assert not labels, f"{rule.get('record') or rule['alert']}: unknown labels {labels}"


def test_rule_error_codes_are_the_contracts() -> None:
    """A code matcher in a rule (the server-side error ratio) lists real error codes only."""
    for rule in _rules():
        for m in _LABEL_MATCHER.finditer(rule["expr"]):
            if m.group(1) == "code":
                codes = set(json.loads(m.group(2)).split("|"))
                assert codes <= set(STATUS), codes - set(STATUS)


# ---------------------------------------------------------------- the Grafana dashboard


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _targets() -> list[tuple[str, str]]:
    """(panel title / refId, expression) of every panel query."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in _panels(_dashboard())
        for target in panel.get("targets", [])
    ]


def _datasource_uid() -> str:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    uid: str = source["uid"]
    return uid


def test_every_dashboard_query_names_only_exported_metrics(
    exported: dict[str, set[str]],
) -> None:
    known_labels = set().union(*exported.values()) | {"job", "instance"}
    targets = _targets()
    assert len(targets) >= 20
    for where, expr in targets:
        expr = substitute(expr)
        names = metric_names(expr)
        assert names, f"{where}: selects no metric: {expr}"
        unknown = names - set(exported) - PROMETHEUS_OWN
        assert not unknown, f"{where}: not exported: {unknown}"
        labels = label_names(expr) - known_labels
        assert not labels, f"{where}: unknown labels {labels}"
    (variable,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == "run"]
    match = _LABEL_VALUES.match(variable["definition"])
    assert match is not None, variable["definition"]
    assert match.group(1) in exported
    assert match.group(2) in exported[match.group(1)]


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses every query (variables interpolated) as the expression of a recording
    rule: a syntax error in a panel shows up here, not as a red triangle in Grafana."""
    rules = [
        {"record": f"dashboard:query_{k}:check", "expr": substitute(expr)}
        for k, (_, expr) in enumerate(_targets())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_dashboard_structure() -> None:
    """Provisionable as is: every query panel uses the provisioned datasource by uid, the run
    variable lists the runs (multi, All), panel ids are unique and panels do not overlap."""
    dashboard = _dashboard()
    uid = _datasource_uid()
    assert dashboard["uid"] == "cdas"
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if not panel.get("targets"):
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid, panel["title"]
            assert target["expr"].strip(), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "run"]
    assert variable["type"] == "query"
    assert variable["datasource"]["uid"] == uid
    assert variable["multi"] is True
    assert variable["includeAll"] is True
    assert variable["query"]["query"] == "label_values(cdas_run_info, run)"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_dashboard_has_the_issues_panels() -> None:
    """The views the issue asks for, by what they query and how they draw it."""
    panels = list(_panels(_dashboard()))

    def using(fragment: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in panels
            if any(fragment in t["expr"] for t in p.get("targets", []))
            and (kind is None or p["type"] == kind)
        ]

    assert using("cdas_run_competence", "timeseries")
    assert using("cdas_run_step", "timeseries")
    (heatmap,) = using("cdas_run_prompt_difficulty_bucket", "heatmap")
    assert all(t["format"] == "heatmap" for t in heatmap["targets"])
    assert heatmap["options"]["calculate"] is False
    assert "rate(" not in heatmap["targets"][0]["expr"], "a gauge histogram is used as is"
    (band,) = using("cdas_batch_difficulty_bucket", "timeseries")
    exprs = " ".join(t["expr"] for t in band["targets"])
    assert all(f"histogram_quantile({q}," in exprs for q in ("0.1", "0.5", "0.9"))
    assert "cdas_run_competence" in exprs
    assert "cannot overlay a line" in heatmap["description"] + band["description"]
    rows = [p for p in panels if p["type"] == "row" and p.get("repeat") == "run"]
    assert len(rows) == 1, "the difficulty row repeats per run"
    assert using("cdas_zero_gradient_groups_total", "timeseries")
    (figure6,) = using("cdas_batch_pass_rate_sum", "barchart")
    assert "by (difficulty)" in figure6["targets"][0]["expr"]
    assert "$__range" in figure6["targets"][0]["expr"]
    assert figure6["targets"][0]["instant"] is True
    for fragment in (
        "cdas_rollouts_total",
        "cdas_results_applied_total",
        "cdas_results_duplicate_total",
        "cdas_request_duration_seconds_count",
        "cdas_request_duration_seconds_bucket",
        "cdas_request_errors_total",
        "cdas_store_up",
        "cdas_ready",
        "cdas_store_ping_seconds",
        'up{job="cdas"}',
    ):
        assert using(fragment), fragment
    (table,) = [p for p in panels if p["type"] == "table"]
    exprs = " ".join(t["expr"] for t in table["targets"])
    for name in ("cdas_run_info", "cdas_run_prompts{", "cdas_run_prompts_seen", "cdas_run_step"):
        assert name in exprs, name


def test_grafana_provisioning_matches_the_dashboard_and_prometheus() -> None:
    """The provider serves the folder the dashboard is mounted in; the datasource's
    timeInterval is Prometheus's scrape interval, which $__rate_interval is derived from."""
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
    comments = [line for line in DASHBOARD_PROVIDERS.read_text().splitlines() if "#" in line]
    assert any(provider["options"]["path"] in line for line in comments), "mount path documented"
    (source,) = load_yaml(DATASOURCES)["datasources"]
    scrape = load_yaml(PROMETHEUS_DIR / "prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def test_compose_runs_prometheus_and_grafana_on_the_committed_config() -> None:
    """docker-compose mounts deploy/prometheus where Prometheus reads its config, and
    deploy/grafana where the provisioning and the dashboard provider look."""
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert prometheus["depends_on"]["coordinator"]["condition"] == "service_healthy"
    grafana = services["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/cdas.json"

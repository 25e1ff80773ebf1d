// The coordinator's built-in dashboard: vanilla JS and hand-drawn SVG, nothing fetched from the
// internet. It polls GET /v1/runs and each run's GET /v1/runs/{id}/state every POLL_MS (a new round
// is scheduled when the previous one has finished) and redraws only what changed.
"use strict";
(() => {
  const POLL_MS = 2000;
  const MAX_RUNS = 8; // runs whose state is polled and charted
  const FRONTIER = 10;
  const REFETCH_STEPS = 4; // the latest steps are asked for again: late results still change them
  const TOKEN_KEY = "cdas.token";
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#e8590c", "#0f9d58", "#c2255c", "#7048e8", "#0b7285", "#b08800", "#5c6f82"];
  const CHART_H = 240;
  const HIST_H = 292; // as tall as the frontier table next to it

  const LINES = [
    { chart: "competence", key: "competence", domain: [-1, 1], label: "C", digits: 3 },
    { chart: "pass-rate", key: "mean_pass_rate", domain: [0, 1], label: "pass rate", digits: 3 },
    { chart: "zero-gradient", key: "zero_gradient_ratio", domain: [0, 1], label: "share", digits: 3 },
  ];

  const app = {
    runs: null, // the last /v1/runs list
    states: new Map(), // run_id -> state, for the polled runs
    histories: new Map(), // run_id -> the history read so far (each poll asks only for its tail)
    polled: [], // run ids charted, in table order
    colors: new Map(), // run_id -> palette index, kept while the run exists
    selected: null,
    timer: 0,
    busy: false,
    again: false,
    drawn: new Map(), // element -> signature of what it shows
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** True when `node` already shows `sig` (then leave the DOM alone); else remember it. */
  function unchanged(node, sig) {
    if (app.drawn.get(node) === sig) return true;
    app.drawn.set(node, sig);
    return false;
  }

  const finite = (v) => typeof v === "number" && Number.isFinite(v);
  const int = (v) => (finite(v) ? Math.round(v).toLocaleString("en-US") : "\u2013");
  const fixed = (v, d) => (finite(v) ? v.toFixed(d) : "\u2013");
  const signed = (v, d) => (finite(v) ? (v > 0 ? "+" : v < 0 ? "\u2212" : "") + Math.abs(v).toFixed(d) : "\u2013");
  const colorOf = (id) => (app.colors.has(id) ? PALETTE[app.colors.get(id)] : null);

  function getToken() {
    try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }
  function setToken(token) {
    try { localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode: this tab only */ }
    app.memoryToken = token;
  }

  function selectedFromHash() {
    const m = /^#run=(.+)$/.exec(location.hash);
    if (!m) return null;
    try { return decodeURIComponent(m[1]); } catch (e) { return null; }
  }

  /** Nice tick values covering [lo, hi], about `count` of them. */
  function ticks(lo, hi, count, minStep) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const err = raw / mag;
    const step = Math.max(minStep || 0, mag * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1));
    const out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
  function tickDigits(values) {
    if (values.length < 2) return 2;
    const step = Math.abs(values[1] - values[0]);
    return Math.max(0, Math.min(4, -Math.floor(Math.log10(step) + 1e-9)));
  }
  function tickText(v, digits) {
    return v < 0 ? "\u2212" + Math.abs(v).toFixed(digits) : v.toFixed(digits);
  }

  /** The y range shown for `values` inside `domain`: padded, snapped to nice ticks, at least `minSpan`. */
  function yRange(values, domain, minSpan) {
    if (!values.length) return domain.slice();
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    const pad = Math.max((hi - lo) * 0.08, minSpan / 2 - (hi - lo) / 2, 0);
    lo -= pad;
    hi += pad;
    const t = ticks(lo, hi, 5);
    const step = t.length > 1 ? t[1] - t[0] : minSpan;
    lo = Math.max(domain[0], Math.floor(lo / step + 1e-9) * step);
    hi = Math.min(domain[1], Math.ceil(hi / step - 1e-9) * step);
    return hi > lo ? [lo, hi] : domain.slice();
  }

  // ---------------------------------------------------------------- fetching

  class AuthError extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = getToken() || app.memoryToken;
    if (token) headers.Authorization = "Bearer " + token;
    let res;
    try {
      res = await fetch(path, { headers, cache: "no-store" });
    } catch (e) {
      throw new Error("coordinator unreachable");
    }
    if (res.status === 401) throw new AuthError(token ? "the token was refused" : "a token is required");
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const err = body && body.error;
      const e = new Error(err ? `${err.code}: ${err.message}` : `HTTP ${res.status} on ${path}`);
      e.status = res.status;
      throw e;
    }
    return body;
  }

  function assignColors(runs) {
    const ids = new Set(runs.map((r) => r.run_id));
    for (const id of [...app.colors.keys()]) if (!ids.has(id)) app.colors.delete(id);
    const used = new Set(app.colors.values());
    for (const id of app.polled) {
      if (app.colors.has(id)) continue;
      const free = PALETTE.findIndex((_, i) => !used.has(i));
      if (free < 0) break;
      app.colors.set(id, free);
      used.add(free);
    }
  }

  async function round() {
    if (app.busy) { app.again = true; return; }
    clearTimeout(app.timer);
    app.busy = true;
    let paused = false;
    try {
      const runs = (await api("/v1/runs")).runs || [];
      const wanted = selectedFromHash();
      const sel = runs.some((r) => r.run_id === wanted) ? wanted : runs.length ? runs[0].run_id : null;
      const polled = runs.slice(0, MAX_RUNS).map((r) => r.run_id);
      if (sel && !polled.includes(sel)) polled[polled.length - 1] = sel;
      const answers = await Promise.all(
        polled.map((id) => {
          const from = historyFrom(id);
          const query = [id === sel ? `frontier=${FRONTIER}` : "", from ? `history_from=${from}` : ""];
          const path = `/v1/runs/${encodeURIComponent(id)}/state` + (query.some(Boolean) ? "?" + query.filter(Boolean).join("&") : "");
          return api(path).then(
            (s) => [id, withHistory(id, s, from)],
            (e) => { if (e instanceof AuthError) throw e; return [id, null]; } // deleted meanwhile
          );
        })
      );
      for (const id of [...app.histories.keys()]) if (!polled.includes(id)) app.histories.delete(id);
      app.runs = runs;
      app.selected = sel;
      app.polled = polled.filter((id) => answers.some(([i, s]) => i === id && s));
      app.states = new Map(answers.filter(([, s]) => s));
      assignColors(runs);
      $("auth").hidden = true;
      render();
      status("ok", `live \u00b7 ${runs.length} run${runs.length === 1 ? "" : "s"} \u00b7 updated ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (e instanceof AuthError) {
        paused = true; // until a token is entered
        showAuth(e.message);
      } else {
        app.drawn.clear(); // redraw everything next time, in case a drawing failed half-way
        status("error", `error: ${e.message} \u00b7 retrying`);
      }
    } finally {
      app.busy = false;
    }
    if (app.again) { app.again = false; round(); return; }
    if (!paused) app.timer = setTimeout(round, POLL_MS);
  }

  // The first step to ask for: all of them the first time, then the last few read (a run polled
  // for hours returns a few entries per poll, not its whole history).
  function historyFrom(id) {
    const seen = app.histories.get(id);
    return seen && seen.length ? Math.max(0, seen[seen.length - 1].step - REFETCH_STEPS) : 0;
  }

  // The state with its whole history: what was read before `from`, then the answer's. A run whose
  // step went back (deleted and created again) starts over: its history is read whole next time.
  function withHistory(id, state, from) {
    const seen = app.histories.get(id) || [];
    let history = state.history;
    if (from > 0) {
      const last = seen.length ? seen[seen.length - 1].step : -1;
      if (state.step === null || state.step < last) {
        app.histories.delete(id);
        return Object.assign({}, state, { history: [] });
      }
      history = seen.filter((h) => h.step < from).concat(state.history);
    }
    app.histories.set(id, history);
    return Object.assign({}, state, { history });
  }

  function status(kind, text) {
    const box = $("status");
    box.dataset.state = kind;
    $("status-text").textContent = text;
    box.title = text;
  }

  function showAuth(why) {
    status("auth", `unauthenticated: ${why}`);
    $("content").hidden = true;
    $("empty").hidden = true;
    $("auth").hidden = false;
    $("token-error").textContent = getToken() || app.memoryToken ? "That token was refused." : "";
    if (document.activeElement !== $("token")) $("token").focus();
  }

  // ---------------------------------------------------------------- rendering

  function render() {
    const runs = app.runs || [];
    $("empty").hidden = runs.length > 0;
    $("content").hidden = runs.length === 0;
    if (!runs.length) return;
    renderRuns(runs);
    renderLegend();
    for (const spec of LINES) lineChart(spec);
    const st = app.states.get(app.selected);
    histogram(st);
    frontier(st);
  }

  function renderRuns(runs) {
    const body = $("runs").tBodies[0];
    const note = runs.length > MAX_RUNS ? `charts show ${app.polled.length} of ${runs.length} runs` : "click a run for its difficulties";
    const sig = JSON.stringify([app.selected, note, runs.map((r) => [r.run_id, r.strategy, r.size, r.step, r.competence, r.counts, colorOf(r.run_id)])]);
    if (unchanged(body, sig)) return;
    $("runs-note").textContent = note;
    const rows = runs.map((r) => {
      const c = r.counts || {};
      const tr = el("tr", { "data-run": r.run_id, tabindex: "0", class: r.run_id === app.selected ? "selected" : null });
      const id = el("td", { class: "id" });
      const sw = el("span", { class: "swatch" });
      const color = colorOf(r.run_id);
      if (color) sw.style.background = color;
      id.append(sw, document.createTextNode(r.run_id));
      const seen = el("td", { class: "num" });
      const share = r.size ? (c.seen || 0) / r.size : 0;
      const cell = el("span", { class: "bar-cell", title: `${(share * 100).toFixed(1)}% of the prompts have results` });
      const mini = el("span", { class: "mini" });
      const fill = el("span");
      fill.style.width = `${Math.min(100, share * 100).toFixed(1)}%`;
      mini.append(fill);
      cell.append(mini, document.createTextNode(int(c.seen)));
      seen.append(cell);
      tr.append(
        id,
        el("td", {}, r.strategy),
        el("td", { class: "num" }, int(r.size)),
        el("td", { class: "num" }, r.step === null || r.step === undefined ? "\u2013" : int(r.step)),
        el("td", { class: "num" }, signed(r.competence, 4)),
        seen,
        el("td", { class: "num" }, int(c.results)),
        el("td", { class: "num" }, int(c.rollouts))
      );
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function renderLegend() {
    const box = $("legend");
    const sig = JSON.stringify([app.selected, app.polled.map((id) => [id, colorOf(id)])]);
    if (unchanged(box, sig)) return;
    box.replaceChildren(
      ...app.polled.map((id) => {
        const item = el("span", { "data-run": id, class: id === app.selected ? "selected" : null, title: "select " + id });
        const sw = el("span", { class: "swatch" });
        sw.style.background = colorOf(id) || "#98a2b3";
        item.append(sw, document.createTextNode(id));
        return item;
      })
    );
  }

  function chartBox(name) {
    return document.querySelector(`.chart[data-for="${name}"]`);
  }

  function frame(box, name, width, height) {
    const root = svg("svg", { "data-chart": name, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    box.replaceChildren(root);
    return root;
  }

  /** Axes, grid and tick labels; returns the scales. */
  function axes(root, width, height, xr, yr, xLabel, yLabel, xTicks) {
    const m = { l: 54, r: 16, t: 14, b: 38 };
    const pw = width - m.l - m.r;
    const ph = height - m.t - m.b;
    const x = (v) => m.l + ((v - xr[0]) / (xr[1] - xr[0])) * pw;
    const y = (v) => m.t + ph - ((v - yr[0]) / (yr[1] - yr[0])) * ph;
    const yt = ticks(yr[0], yr[1], 5);
    const yd = tickDigits(yt);
    for (const v of yt) {
      root.append(svg("line", { class: "gridline", x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v) }));
      root.append(svg("text", { class: "tick", x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, tickText(v, yd)));
    }
    const xt = xTicks || ticks(xr[0], xr[1], Math.max(2, Math.floor(pw / 70)), 1);
    const xd = tickDigits(xt);
    for (const v of xt) {
      root.append(svg("line", { class: "axis", x1: x(v), x2: x(v), y1: m.t + ph, y2: m.t + ph + 4 }));
      root.append(svg("text", { class: "tick", x: x(v), y: m.t + ph + 16, "text-anchor": "middle" }, tickText(v, xd)));
    }
    root.append(svg("line", { class: "axis", x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }));
    root.append(svg("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }));
    root.append(svg("text", { class: "label", x: m.l + pw / 2, y: height - 4, "text-anchor": "middle" }, xLabel));
    root.append(
      svg("text", { class: "label", x: 0, y: 0, transform: `translate(12 ${m.t + ph / 2}) rotate(-90)`, "text-anchor": "middle" }, yLabel)
    );
    return { x, y, m, pw, ph };
  }

  /** At most about 2 points per pixel: every k-th point, the last one always kept. */
  function thin(points, pixels) {
    const limit = Math.max(2, Math.floor(pixels * 2));
    if (points.length <= limit) return points;
    const k = Math.ceil(points.length / limit);
    const out = points.filter((_, i) => i % k === 0);
    if (out[out.length - 1] !== points[points.length - 1]) out.push(points[points.length - 1]);
    return out;
  }

  function lineChart(spec) {
    const box = chartBox(spec.chart);
    const width = Math.max(300, Math.floor(box.clientWidth));
    const series = app.polled.map((id) => {
      const hist = (app.states.get(id) || {}).history || [];
      const pts = [];
      for (const h of hist) if (finite(h.step) && finite(h[spec.key])) pts.push([h.step, h[spec.key]]);
      return { id, color: colorOf(id) || "#98a2b3", pts };
    });
    const sig = JSON.stringify([
      width,
      app.selected,
      series.map((s) => [s.id, s.color, s.pts.length, s.pts[0], s.pts[s.pts.length - 1]]),
    ]);
    if (unchanged(box, sig)) return;
    const all = series.flatMap((s) => s.pts);
    const steps = all.map((p) => p[0]);
    let xr = steps.length ? [Math.min(...steps), Math.max(...steps)] : [0, 10];
    if (xr[1] - xr[0] < 1) xr = [xr[0] - 1, xr[1] + 1];
    const yr = yRange(all.map((p) => p[1]), spec.domain, 0.1);
    const root = frame(box, spec.chart, width, CHART_H);
    const sc = axes(root, width, CHART_H, xr, yr, "step", spec.label);
    if (!all.length) {
      root.append(svg("text", { class: "nodata", x: sc.m.l + sc.pw / 2, y: sc.m.t + sc.ph / 2, "text-anchor": "middle" }, "no steps yet"));
    }
    // the selected run last, so that it is drawn on top
    const order = series.filter((s) => s.id !== app.selected).concat(series.filter((s) => s.id === app.selected));
    for (const s of order) {
      if (!s.pts.length) continue;
      const sel = s.id === app.selected;
      const pts = thin(s.pts, sc.pw);
      const line = svg("polyline", {
        class: "series",
        "data-run": s.id,
        "data-points": pts.length,
        points: pts.map((p) => `${sc.x(p[0]).toFixed(1)},${sc.y(p[1]).toFixed(1)}`).join(" "),
        stroke: s.color,
        "stroke-width": sel ? 2.6 : 1.5,
        "stroke-opacity": sel ? 1 : 0.7,
      });
      root.append(line);
      const last = pts[pts.length - 1];
      root.append(svg("circle", { cx: sc.x(last[0]).toFixed(1), cy: sc.y(last[1]).toFixed(1), r: sel ? 3.5 : 2.5, fill: s.color }));
    }
    const hover = svg("line", { class: "hover", y1: sc.m.t, y2: sc.m.t + sc.ph, visibility: "hidden" });
    root.append(hover);
    box._chart = { sc, xr, series, spec, hover };
  }

  function histogram(st) {
    const box = chartBox("difficulty");
    const width = Math.max(300, Math.floor(box.clientWidth));
    const edges = (st && st.histogram && st.histogram.edges) || [];
    const counts = (st && st.histogram && st.histogram.counts) || [];
    const c = st ? st.competence : null;
    const sig = JSON.stringify([width, st ? st.run_id : null, counts, c, st ? [st.seen, st.size, st.step, st.retired] : null]);
    if (unchanged(box, sig)) return;
    $("hist-run").textContent = st ? st.run_id : "\u2013";
    // retired: prompts CDAS keeps out of selection after zero-gradient streaks (retire_after)
    $("hist-note").textContent = st
      ? `${int(st.seen)} of ${int(st.size)} prompts have results${st.step !== null && st.step !== undefined ? ` \u00b7 step ${int(st.step)}` : ""}${st.retired > 0 ? ` \u00b7 ${int(st.retired)} retired` : ""}`
      : "";
    const root = frame(box, "difficulty", width, HIST_H);
    if (st) root.setAttribute("data-run", st.run_id);
    const top = Math.max(1, ...counts);
    const yt = ticks(0, top, 4, 1);
    const ystep = yt.length > 1 ? yt[1] - yt[0] : 1;
    const yr = [0, Math.ceil(top / ystep - 1e-9) * ystep];
    const sc = axes(root, width, HIST_H, [-1, 1], yr, "difficulty D  (\u22121 easy \u2026 +1 hard)", "prompts", ticks(-1, 1, 8));
    for (let i = 0; i < counts.length && i + 1 < edges.length; i++) {
      const x0 = sc.x(edges[i]);
      const x1 = sc.x(edges[i + 1]);
      const h = counts[i] ? Math.max(1, sc.y(0) - sc.y(counts[i])) : 0;
      const near = finite(c) && c >= edges[i] && c < edges[i + 1];
      const bar = svg("rect", {
        class: near ? "bar near" : "bar",
        "data-bin": i,
        "data-count": counts[i],
        x: (x0 + 0.5).toFixed(1),
        y: (sc.y(0) - h).toFixed(1),
        width: Math.max(1, x1 - x0 - 1).toFixed(1),
        height: h.toFixed(1),
      });
      bar.append(svg("title", {}, `D in [${edges[i].toFixed(2)}, ${edges[i + 1].toFixed(2)}): ${counts[i]} prompts`));
      root.append(bar);
    }
    if (!counts.some((v) => v > 0)) {
      root.append(svg("text", { class: "nodata", x: sc.m.l + sc.pw / 2, y: sc.m.t + sc.ph / 2, "text-anchor": "middle" }, "no results yet"));
    }
    if (finite(c)) {
      const xc = sc.x(c);
      root.append(svg("line", { class: "marker", "data-marker": "competence", "data-value": String(c), x1: xc, x2: xc, y1: sc.m.t - 4, y2: sc.m.t + sc.ph }));
      const right = xc < sc.m.l + sc.pw * 0.7;
      root.append(
        svg("text", { class: "marker-label", x: xc + (right ? 6 : -6), y: sc.m.t + 10, "text-anchor": right ? "start" : "end" }, `C = ${signed(c, 3)}`)
      );
    }
  }

  function frontier(st) {
    const table = $("frontier");
    const body = table.tBodies[0];
    const rows = st && Array.isArray(st.frontier) ? st.frontier : null;
    const sig = JSON.stringify([st ? st.run_id : null, st ? st.competence : null, rows]);
    if (unchanged(body, sig)) return;
    const c = st ? st.competence : NaN;
    $("frontier-note").textContent = st ? `|D \u2212 C| smallest, C = ${signed(c, 3)}` : "";
    if (!rows || !rows.length) {
      const why = !st ? "no run selected" : !rows ? "this coordinator does not report the frontier" : "no prompt has results yet";
      const tr = el("tr");
      tr.append(el("td", { colspan: 6, class: "empty-row" }, why));
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(
      ...rows.map((p) => {
        const tr = el("tr", { "data-prompt": p.prompt_id });
        tr.append(
          el("td", { class: "id", title: p.label !== null && p.label !== undefined ? `label ${p.label}` : null }, p.prompt_id),
          el("td", { class: "num" }, signed(p.difficulty, 4)),
          el("td", { class: "num" }, signed(p.difficulty - c, 4)),
          el("td", { class: "num" }, int(p.updates)),
          el("td", { class: "num" }, fixed(p.last_pass_rate, 3)),
          el("td", { class: "num" }, p.last_step === null || p.last_step === undefined ? "\u2013" : int(p.last_step))
        );
        return tr;
      })
    );
  }

  // ---------------------------------------------------------------- interaction

  function select(id) {
    if (!id || id === app.selected) return;
    location.hash = "run=" + encodeURIComponent(id);
  }

  function onRowEvent(ev) {
    const tr = ev.target.closest("[data-run]");
    if (!tr) return;
    if (ev.type === "keydown" && ev.key !== "Enter" && ev.key !== " ") return;
    if (ev.type === "keydown") ev.preventDefault();
    select(tr.getAttribute("data-run"));
  }

  function nearest(pts, step) {
    let lo = 0;
    let hi = pts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (pts[mid][0] < step) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0 && Math.abs(pts[lo - 1][0] - step) <= Math.abs(pts[lo][0] - step)) lo -= 1;
    return pts[lo];
  }

  function onChartMove(ev) {
    const box = ev.currentTarget;
    const ch = box._chart;
    const tip = $("tip");
    const root = box.querySelector("svg");
    if (!ch || !root) return;
    const rect = root.getBoundingClientRect();
    const px = ev.clientX - rect.left;
    const { sc, xr } = ch;
    if (px < sc.m.l || px > sc.m.l + sc.pw) return onChartLeave(ev);
    const step = Math.round(xr[0] + ((px - sc.m.l) / sc.pw) * (xr[1] - xr[0]));
    const rows = [];
    for (const s of ch.series) {
      if (!s.pts.length) continue;
      const p = nearest(s.pts, step);
      if (p[0] === step) rows.push([s, p[1]]);
    }
    if (!rows.length) return onChartLeave(ev);
    ch.hover.setAttribute("x1", sc.x(step));
    ch.hover.setAttribute("x2", sc.x(step));
    ch.hover.setAttribute("visibility", "visible");
    tip.replaceChildren(el("b", {}, `step ${step}`));
    rows.sort((a, b) => b[1] - a[1]);
    for (const [s, v] of rows) {
      const line = el("div");
      const sw = el("span", { class: "swatch" });
      sw.style.background = s.color;
      line.append(sw, document.createTextNode(`${s.id}  ${signed(v, ch.spec.digits)}`));
      tip.append(line);
    }
    tip.hidden = false;
    const w = tip.offsetWidth;
    tip.style.left = `${ev.clientX + 14 + w > window.innerWidth ? ev.clientX - 14 - w : ev.clientX + 14}px`;
    tip.style.top = `${ev.clientY + 12}px`;
  }

  function onChartLeave(ev) {
    $("tip").hidden = true;
    const ch = ev.currentTarget._chart;
    if (ch) ch.hover.setAttribute("visibility", "hidden");
  }

  let resizeTimer = 0;
  function onResize() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (app.runs) render(); }, 150);
  }

  function start() {
    const runs = $("runs");
    runs.addEventListener("click", onRowEvent);
    runs.addEventListener("keydown", onRowEvent);
    $("legend").addEventListener("click", onRowEvent);
    for (const spec of LINES) {
      const box = chartBox(spec.chart);
      box.addEventListener("mousemove", onChartMove);
      box.addEventListener("mouseleave", onChartLeave);
    }
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      setToken(token);
      $("token").value = "";
      $("token-error").textContent = "";
      status("loading", "connecting\u2026");
      round();
    });
    window.addEventListener("hashchange", () => round());
    window.addEventListener("resize", onResize);
    round();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

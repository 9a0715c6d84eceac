"use strict";
// The report's script. Every piece of data goes into the page through textContent or
// setAttribute, never as markup: captions, tags and names are user data. Charts are
// Vega-Lite specs drawn by vega-embed (inlined above this script) with Vega's expression
// interpreter, so nothing needs eval under the page's Content-Security-Policy.
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const COLORS = ["#2f5bd3", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fbf", "#5c946e", "#c45ab3", "#3d8fd1", "#8d6e63", "#707a8a"];
  const PAGE = 40;
  const runs = DATA.runs;
  const runByKey = {}, runById = {};
  // each run's colour comes with it (derived from its run id in report.py), the same in every report
  runs.forEach(function (r, i) { r.color = r.color || COLORS[i % COLORS.length]; runByKey[r.key] = r; runById[r.run_id] = r; });
  // The metrics come from the runs (each task declares its own, in result.json); none is named here.
  function union(lists) {
    const out = [];
    lists.forEach(function (l) { l.forEach(function (x) { if (out.indexOf(x) < 0) out.push(x); }); });
    return out;
  }
  function metricNames(r) { return (r.metric_specs || []).map(function (m) { return m.name; }); }
  function perExample(r) { return (r.metric_specs || []).filter(function (m) { return m.per_example; }).map(function (m) { return m.name; }); }
  function isRight(run, id, metric) {
    const o = run.outcomes[id];
    return !!o && isNum(o[metric]) && o[metric] >= 1;
  }
  const DATASET_KEYS = Object.keys(DATA.datasets);

  // --- helpers ---------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function pct(x) { return isNum(x) ? (100 * x).toFixed(2) : "-"; }
  function pct1(x) { return isNum(x) ? (100 * x).toFixed(1) + "%" : "n/a"; }
  // score text with as many significant digits as the values shown together need to read apart
  // (at least 4): -0.004533 and -0.0045334 are not printed alike when one decides against the other
  function digitsFor(values) {
    const nums = values.filter(isNum);
    for (let d = 4; d < 17; d++) {
      const seen = {};
      let ok = true;
      nums.forEach(function (v) { const t = Number(v).toPrecision(d); if (seen[t] !== undefined && seen[t] !== v) ok = false; seen[t] = v; });
      if (ok) return d;
    }
    return 17;
  }
  function fmt(v, d) { return isNum(v) ? Number(v).toPrecision(d) : "-"; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function naturalCompare(a, b) { return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" }); }

  // --- charts: Vega-Lite specs, drawn by vega-embed -------------------------------------------
  const pending = [];
  const CHART_CONFIG = {
    font: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
    view: { stroke: null },
    axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 500, labelColor: "#1d2230", titleColor: "#5d6475",
            gridColor: "#eceef3", domainColor: "#9aa1b1", tickColor: "#9aa1b1" },
    legend: { labelFontSize: 11, titleFontSize: 11, labelLimit: 480, symbolType: "square" },
    title: { fontSize: 13, anchor: "start", fontWeight: 600, color: "#1d2230" },
  };
  function draw(box, spec) {
    const vl = Object.assign({ config: CHART_CONFIG }, spec);
    box.setAttribute("data-chart", "pending");
    if (typeof vegaEmbed !== "function" || typeof vega === "undefined" || !vega.expressionInterpreter) {
      box.setAttribute("data-chart", "failed");
      box.appendChild(el("p", { class: "hint" }, "chart library missing: the report file is incomplete"));
      return;
    }
    const p = vegaEmbed(box, vl, { mode: "vega-lite", renderer: "svg", actions: false, ast: true,
                                   expr: vega.expressionInterpreter, tooltip: true })
      .then(function () { box.setAttribute("data-chart", "ok"); })
      .catch(function (err) {
        box.setAttribute("data-chart", "failed");
        box.appendChild(el("p", { class: "hint" }, "chart failed: " + err));
        console.error("chart failed", err);
      });
    pending.push(p);
  }
  function chartBox(cls, attrs) {
    const box = el("div", Object.assign({ class: "chart " + (cls || "") }, attrs || {}));
    return box;
  }

  // Horizontal grouped bars: one band per category, one bar per series (a run) with its 95%
  // interval as a whisker and a text label (score and n). A score of 0 is a thin mark with
  // "0.0%"; a missing score is no bar with "n/a".
  function barSpec(o) {
    const rows = o.rows.map(function (r) {
      const has = isNum(r.value);
      const ci = r.ci && isNum(r.ci[0]) && isNum(r.ci[1]) ? r.ci : null;
      return {
        cat: r.cat, series: r.series, cat_i: o.cats.indexOf(r.cat), series_i: o.series.indexOf(r.series), value: has ? r.value : 0, has: has, zero: has && r.value === 0,
        lo: ci ? ci[0] : null, hi: ci ? ci[1] : null, hasci: !!ci,
        textx: ci ? Math.max(ci[1], has ? r.value : 0) : (has ? r.value : 0),
        text: (has ? pct1(r.value) : "n/a") + (isNum(r.n) ? "  n=" + r.n : ""),
        shown: has ? pct1(r.value) : "no data", ci_text: ci ? pct1(ci[0]) + " \u2013 " + pct1(ci[1]) : "-",
        n: isNum(r.n) ? r.n : null,
      };
    });
    const x = { field: "value", type: "quantitative", scale: { domain: [0, 1], nice: false, clamp: true },
                axis: { format: ".0%", tickCount: 5, grid: true, title: o.xTitle, labelFlush: true } };
    const tooltip = [
      { field: "series", type: "nominal", title: "run" }, { field: "cat", type: "nominal", title: o.catTitle },
      { field: "shown", type: "nominal", title: o.xTitle }, { field: "ci_text", type: "nominal", title: "95% interval" },
      { field: "n", type: "quantitative", title: "n" },
    ];
    // User text (tags, run labels) never goes into a `sort` array: Vega-Lite splices those into
    // expressions; order comes from the numeric cat_i / series_i fields and the scale domains.
    const color = { field: "series", type: "nominal", scale: { domain: o.series, range: o.colors },
                    legend: o.series.length > 1 ? { orient: "bottom", direction: "vertical", title: null } : null };
    return {
      title: o.title,
      width: o.width || 400,
      height: { step: 15 },
      data: { values: rows },
      encoding: {
        y: { field: "cat", type: "nominal", sort: { field: "cat_i", op: "min" }, title: null,
             axis: { labelLimit: 260, labelPadding: 6, ticks: false, domain: false } },
        yOffset: { field: "series", type: "nominal", sort: { field: "series_i", op: "min" }, scale: { paddingInner: 0.1 } },
        tooltip: tooltip,
      },
      layer: [
        { transform: [{ filter: { field: "has", equal: true } }], mark: { type: "bar", cornerRadiusEnd: 2 }, encoding: { x: x, color: color } },
        { transform: [{ filter: { field: "zero", equal: true } }], mark: { type: "tick", thickness: 2, orient: "vertical" },
          encoding: { x: x, color: color } },
        { transform: [{ filter: { field: "hasci", equal: true } }], mark: { type: "rule", color: "#1d2230", strokeWidth: 1.2 },
          encoding: { x: { field: "lo", type: "quantitative" }, x2: { field: "hi" } } },
        { mark: { type: "text", align: "left", baseline: "middle", dx: 4, fontSize: 10 },
          encoding: { x: { field: "textx", type: "quantitative" }, text: { field: "text" },
                      color: { condition: { test: { field: "has", equal: true }, value: "#1d2230" }, value: "#8a909c" } } },
      ],
    };
  }

  function lineSpec(o) {
    const rows = [];
    o.series.forEach(function (se) {
      se.xs.forEach(function (x, i) { if (isNum(se.ys[i])) rows.push({ x: x, y: se.ys[i], series: se.name }); });
    });
    const names = o.series.map(function (se) { return se.name; });
    const y = { field: "y", type: "quantitative", title: o.yTitle, scale: o.yDomain ? { domain: o.yDomain, zero: false } : { zero: false },
                axis: { format: o.yFormat || "~s", tickCount: 5 } };
    return {
      title: o.title,
      width: o.width || 400,
      height: o.height || 200,
      data: { values: rows },
      mark: { type: "line", point: !!o.points, strokeWidth: 1.8 },
      encoding: {
        x: { field: "x", type: "quantitative", title: o.xTitle,
             scale: o.xlog ? { type: "log", base: 2, nice: false } : { zero: false, nice: false },
             axis: { format: "~d", tickCount: 6, labelOverlap: true } },
        y: y,
        color: { field: "series", type: "nominal", scale: { domain: names, range: o.series.map(function (se) { return se.color; }) },
                 legend: { orient: "bottom", direction: "vertical", title: null, symbolType: "stroke", symbolStrokeWidth: 2 } },
        strokeDash: o.dashed ? { field: "series", type: "nominal",
                                 scale: { domain: names, range: o.series.map(function (se) { return se.dash ? [4, 3] : [1, 0]; }) } } : undefined,
        tooltip: [{ field: "series", type: "nominal" }, { field: "x", type: "quantitative", title: o.xTitle },
                  { field: "y", type: "quantitative", title: o.yTitle, format: o.yFormat || ".4~g" }],
      },
    };
  }

  // --- header -------------------------------------------------------------------------------
  document.getElementById("title").textContent = DATA.title;
  document.title = DATA.title;
  document.getElementById("meta").textContent =
    "Generated " + DATA.generated + " by " + DATA.generator.name + " " + DATA.generator.version + "; " + runs.length + " run(s).";
  // a dataset's licence note (from its packaged manifest), only for the datasets shown
  const licenceBox = document.getElementById("license-notes");
  const licences = union(DATASET_KEYS.map(function (k) { return DATA.datasets[k].license_note ? [DATA.datasets[k].license_note] : []; }));
  licences.forEach(function (t) { licenceBox.appendChild(el("p", { class: "license", role: "note" }, t)); });
  const notes = document.getElementById("notes");
  DATA.notes.forEach(function (n) { notes.appendChild(el("li", null, n)); });

  // --- one section per task (dataset): its leaderboard, metric notes, charts ------------------
  // Each task's runs are ranked among themselves, by that task's primary metric (the runs arrive
  // ranked, dataset by dataset); each section has its own sort, its own tag-metric selector and
  // its own charts, so a metric of one task never empties another task's panels.
  function runsOf(dkey) { return DATA.datasets[dkey].runs.map(function (k) { return runByKey[k]; }); }
  function fillMetricSelect(sel, names) {
    clear(sel);
    names.forEach(function (m) { sel.appendChild(el("option", { value: m }, m)); });
    sel.disabled = names.length === 0;
  }
  function hasOption(sel, value) { return Array.prototype.some.call(sel.options, function (o) { return o.value === value; }); }
  const FIXED = ["rank", "run", "n", "seconds", "unet", "date"];
  const rankInData = {};
  DATASET_KEYS.forEach(function (dkey) { runsOf(dkey).forEach(function (r, i) { rankInData[r.key] = i + 1; }); });
  const sections = {};  // dkey -> {columns, sort, table, tagSelect, tagBox}
  function columnsFor(dkey) {
    const rs = runsOf(dkey);
    const cols = [
      { key: "rank", label: "#", num: true, value: function (r) { return rankInData[r.key]; } },
      { key: "run", label: "run", value: function (r) { return r.label; } },
      { key: "n", label: "n", num: true, value: function (r) { return r.n_examples; } },
    ].concat(union(rs.map(metricNames)).map(function (m) {
      return { key: FIXED.indexOf(m) < 0 ? m : "metric-" + m, metric: m, label: m, num: true, score: true,
               value: function (r) { const v = (r.metrics || {})[m]; return isNum(v) ? v : null; } };
    })).concat([{ key: "seconds", label: "s / example", num: true, value: function (r) { return r.compute.seconds_per_example; } }]);
    if (rs.some(function (r) { return isNum(r.compute.unet_calls_per_example); })) {
      cols.push({ key: "unet", label: "UNet calls / example", num: true, value: function (r) { return r.compute.unet_calls_per_example; } });
    }
    if (rs.some(function (r) { return r.calibration && r.calibration.after; })) {
      cols.push({ key: "ece", label: "ECE held out: T=1 \u2192 calibrated", num: true,
                  value: function (r) { return r.calibration && r.calibration.after ? r.calibration.after.ece : null; } });
    }
    cols.push({ key: "date", label: "finished", value: function (r) { return r.finished || ""; } });
    return cols;
  }
  function cellFor(c, r) {
    const v = c.value(r);
    if (c.score) {
      const td = el("td", { class: "score", "data-value": isNum(v) ? v : "" });
      if (metricNames(r).indexOf(c.metric) < 0) { td.appendChild(el("span", { class: "v" }, "")); return td; }
      td.appendChild(el("span", { class: "v" + (r.primary === c.metric ? " primary" : "") }, pct(v)));
      const ci = r.ci95 ? r.ci95[c.metric] : null;
      td.appendChild(el("span", { class: "ci" }, ci ? pct(ci[0]) + "\u2013" + pct(ci[1]) : "no interval"));
      return td;
    }
    if (c.key === "rank") return el("td", { class: "num", "data-value": v }, v);
    if (c.key === "run") {
      const td = el("td", { class: "name", "data-value": v });
      const sw = el("span", { class: "swatch" });
      sw.style.background = r.color;
      td.appendChild(sw);
      td.appendChild(el("span", { class: "label" }, v));
      if (r.partial) td.appendChild(el("span", { class: "badge partial" }, "partial"));
      if (r.imported) td.appendChild(el("span", { class: "badge" }, "imported"));
      td.appendChild(el("div", { class: "small" }, "run " + r.run_id + (r.superseded.length ? " (supersedes " + r.superseded.join(", ") + ")" : "")));
      return td;
    }
    if (c.key === "n") {
      const partial = isNum(r.n_expected) && r.n_expected !== r.n_examples;
      return el("td", { class: "num", "data-value": v }, partial ? v + " of " + r.n_expected : v);
    }
    let text = v;
    if (c.key === "seconds") text = isNum(v) ? v.toFixed(3) : "-";
    if (c.key === "unet") text = isNum(v) ? String(Math.round(v)) : "-";
    if (c.key === "ece") {
      const cal = r.calibration;
      text = cal && cal.before && isNum(v) ? pct(cal.before.ece) + " \u2192 " + pct(v) + " (T " + Number(cal.temperature).toPrecision(3) +
        ", n " + cal.held_out_images + (cal.undefined ? ", " + cal.undefined + " undefined" : "") + ")" : "-";
    }
    if (c.key === "date") text = String(v).replace("T", " ").slice(0, 16);
    return el("td", { class: c.num ? "num" : c.key, "data-value": v === null || v === undefined ? "" : v }, text);
  }
  function renderBoard(dkey) {
    const s = sections[dkey];
    const tr = el("tr");
    s.columns.forEach(function (c) {
      const th = el("th", { class: "sortable" + (c.num ? " num" : ""), "data-key": c.key, scope: "col", tabindex: 0 }, c.label);
      if (s.sort.key === c.key) th.setAttribute("aria-sort", s.sort.dir);
      th.addEventListener("click", function () { sortBy(dkey, c.key); });
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") sortBy(dkey, c.key); });
      tr.appendChild(th);
    });
    clear(s.table.tHead);
    s.table.tHead.appendChild(tr);
    const col = s.columns.filter(function (c) { return c.key === s.sort.key; })[0];
    const sign = s.sort.dir === "ascending" ? 1 : -1;
    const ordered = runsOf(dkey).slice().sort(function (a, b) {
      const va = col.value(a), vb = col.value(b);
      const na = va === null || va === undefined || va === "", nb = vb === null || vb === undefined || vb === "";
      if (na || nb) return na === nb ? rankInData[a.key] - rankInData[b.key] : (na ? 1 : -1);
      const cmp = typeof va === "string" || typeof vb === "string" ? naturalCompare(va, vb) : (va < vb ? -1 : va > vb ? 1 : 0);
      return cmp ? sign * cmp : rankInData[a.key] - rankInData[b.key];
    });
    const body = s.table.tBodies[0];
    clear(body);
    ordered.forEach(function (r) {
      const row = el("tr", { "data-run": r.key, "data-run-id": r.run_id });
      s.columns.forEach(function (c) { row.appendChild(cellFor(c, r)); });
      body.appendChild(row);
    });
  }
  function sortBy(dkey, key, dir) {
    const s = sections[dkey];
    const col = s && s.columns.filter(function (c) { return c.key === key; })[0];
    if (!col) return;
    if (dir) s.sort = { key: key, dir: dir };
    else if (s.sort.key === key) s.sort.dir = s.sort.dir === "ascending" ? "descending" : "ascending";
    else s.sort = { key: key, dir: col.num && key !== "rank" ? "descending" : "ascending" };
    renderBoard(dkey);
    writeHash();
  }
  function seriesOf(rs) {
    return { series: rs.map(function (r) { return r.label; }), colors: rs.map(function (r) { return r.color; }) };
  }
  function overallChart(dkey, box) {
    const ds = DATA.datasets[dkey], rs = runsOf(dkey);
    const metrics = union(rs.map(metricNames));
    const rows = [];
    metrics.forEach(function (m) {
      rs.forEach(function (r) {
        const has = metricNames(r).indexOf(m) >= 0;
        rows.push({ cat: m, series: r.label, value: has ? r.metrics[m] : null, ci: has && r.ci95 ? r.ci95[m] : null, n: r.n_examples });
      });
    });
    const chart = chartBox("overall", { "data-dataset": dkey });
    box.appendChild(chart);
    draw(chart, barSpec(Object.assign({ title: "overall", rows: rows, cats: metrics, catTitle: "metric", xTitle: "score" }, seriesOf(rs))));
  }
  function renderTagCharts(dkey) {
    const s = sections[dkey], rs = runsOf(dkey), metric = s.tagSelect.value, box = s.tagBox;
    clear(box);
    const groups = union(rs.map(function (r) { return Object.keys(r.breakdown || {}); }));
    groups.forEach(function (g) {
      const labels = union(rs.map(function (r) { return Object.keys((r.breakdown || {})[g] || {}); })).sort(naturalCompare);
      const rows = [];
      labels.forEach(function (l) {
        rs.forEach(function (r) {
          const b = ((r.breakdown || {})[g] || {})[l];
          const ci = (((r.breakdown_ci || {})[g] || {})[l] || {})[metric];
          rows.push({ cat: l, series: r.label, value: b ? b[metric] : null, ci: ci || null, n: b ? b.n : null });
        });
      });
      const chart = chartBox("tags", { "data-group": g, "data-dataset": dkey, "data-metric": metric });
      box.appendChild(chart);
      draw(chart, barSpec(Object.assign({ title: g + " (" + metric + ")", rows: rows, cats: labels, catTitle: g, xTitle: metric }, seriesOf(rs))));
    });
  }
  // classification: each class's top-1 per run (Wilson whiskers), and each run's confusions
  function classCharts(dkey, box) {
    const rs = runsOf(dkey).filter(function (r) { return r.per_class && r.per_class.length; });
    if (!rs.length) return;
    const names = {};
    rs.forEach(function (r) { r.per_class.forEach(function (c) { names[String(c.classidx)] = String(c.classname); }); });
    const ids = Object.keys(names).sort(function (a, b) { return Number(a) - Number(b); });
    const shown = ids.slice(0, MAX_CLASSES);
    const rows = [];
    shown.forEach(function (id) {
      rs.forEach(function (r) {
        const c = r.per_class.filter(function (x) { return String(x.classidx) === id; })[0];
        rows.push({ cat: names[id], series: r.label, value: c ? c.top1 : null, ci: c ? c.ci95 : null, n: c ? c.n : null });
      });
    });
    box.appendChild(el("h3", null, "Per class" + (ids.length > shown.length ? " (the first " + shown.length + " of " + ids.length + " classes)" : "")));
    const row = el("div", { class: "charts" });
    box.appendChild(row);
    // a task whose tags already are its classes (digits: "class") has these bars under "By tag"
    const classNames = ids.map(function (id) { return names[id]; }).sort().join("\u0000");
    const asTags = union(runsOf(dkey).map(function (r) { return Object.keys(r.breakdown || {}); })).some(function (g) {
      return union(runsOf(dkey).map(function (r) { return Object.keys((r.breakdown || {})[g] || {}); })).sort().join("\u0000") === classNames;
    });
    const chart = chartBox("per-class", { "data-dataset": dkey });
    if (!asTags) row.appendChild(chart);
    if (!asTags) draw(chart, barSpec(Object.assign({ title: "top-1 per class", rows: rows, cats: shown.map(function (id) { return names[id]; }),
                                        catTitle: "class", xTitle: "top1" }, seriesOf(rs))));
    rs.forEach(function (r) {
      if (!r.confusion) return;
      const cells = [];
      Object.keys(r.confusion).forEach(function (t) {
        const total = Object.keys(r.confusion[t]).reduce(function (a, p) { return a + r.confusion[t][p]; }, 0);
        Object.keys(r.confusion[t]).forEach(function (p) {
          if (shown.indexOf(t) < 0 || shown.indexOf(p) < 0) return;
          const n = r.confusion[t][p];
          // the axes are ordered by the numeric positions (truth_i, pred_i), never by a sort array of
          // class names: Vega-Lite turns such an array into an expression, which user text can break
          cells.push({ truth: names[t] || t, pred: names[p] || p, truth_i: shown.indexOf(t), pred_i: shown.indexOf(p),
                       n: n, share: total ? n / total : 0, diag: t === p });
        });
      });
      const c = chartBox("confusion", { "data-dataset": dkey, "data-run": r.key });
      row.appendChild(c);
      const order = shown;
      draw(c, {
        title: "confusion: " + r.label, data: { values: cells },
        width: { step: Math.max(12, Math.min(28, Math.floor(360 / Math.max(1, order.length)))) },
        height: { step: Math.max(12, Math.min(28, Math.floor(360 / Math.max(1, order.length)))) },
        mark: { type: "rect" },
        encoding: {
          x: { field: "pred", type: "nominal", sort: { field: "pred_i", op: "min" }, title: "predicted class", axis: { labelLimit: 120, labelAngle: -45 } },
          y: { field: "truth", type: "nominal", sort: { field: "truth_i", op: "min" }, title: "true class", axis: { labelLimit: 160 } },
          color: { field: "share", type: "quantitative", title: "share of the true class", scale: { domain: [0, 1], scheme: "blues" },
                   legend: { orient: "bottom", format: ".0%" } },
          tooltip: [{ field: "truth", title: "true" }, { field: "pred", title: "predicted" }, { field: "n", type: "quantitative" },
                    { field: "share", type: "quantitative", format: ".1%" }],
        },
      });
    });
  }
  const MAX_CLASSES = 40;
  const tasksBox = document.getElementById("tasks");
  DATASET_KEYS.forEach(function (dkey) {
    const ds = DATA.datasets[dkey], rs = runsOf(dkey);
    const sec = el("section", { class: "task", id: "task-" + dkey, "data-dataset": dkey });
    sec.appendChild(el("h2", null, ds.heading || ds.task));
    sec.appendChild(el("p", { class: "hint" }, rs.length + " run(s) of this task, ranked by its primary metric (bold); " +
      "scores in percent with their 95% interval below; click a column header to sort."));
    const specs = {};
    rs.forEach(function (r) { (r.metric_specs || []).forEach(function (m) { if (!specs[m.name]) specs[m.name] = m; }); });
    const help = el("ul", { class: "metric-help" });
    Object.keys(specs).forEach(function (name) {
      const m = specs[name];
      const li = el("li", { "data-metric": name });
      li.appendChild(el("b", null, name));
      li.appendChild(document.createTextNode(": " + (m.description || "(no description recorded)") +
        (m.primary ? " (primary: ranks the runs)" : "") + (m.per_example ? "" : " (an aggregate: no per-example test)")));
      help.appendChild(li);
    });
    sec.appendChild(help);
    const wrap = el("div", { class: "board-wrap" });
    const table = el("table", { class: "board", "data-dataset": dkey });
    table.appendChild(el("thead"));
    table.appendChild(el("tbody"));
    wrap.appendChild(table);
    sec.appendChild(wrap);
    const charts = el("div", { class: "charts overall-charts" });
    sec.appendChild(charts);
    const tagHead = el("div", { class: "tag-head" });
    const groups = union(rs.map(function (r) { return Object.keys(r.breakdown || {}); }));
    const tagSelect = el("select", { class: "tag-metric", "data-dataset": dkey });
    fillMetricSelect(tagSelect, union(rs.map(perExample)));
    const tagBox = el("div", { class: "charts tag-charts", "data-dataset": dkey });
    if (groups.length) {
      tagHead.appendChild(el("h3", null, "By tag"));
      const lab = el("label", null, "metric ");
      lab.appendChild(tagSelect);
      tagHead.appendChild(lab);
      tagHead.appendChild(el("p", { class: "hint" }, "Bars: each run's score on the examples with that tag; whiskers: 95% Wilson interval; " +
        "the label gives the score and that run's own number of examples (\u201cn/a\u201d: the run has none with that tag; a thin mark at 0 is a score of zero)."));
      sec.appendChild(tagHead);
      sec.appendChild(tagBox);
    }
    const classBox = el("div", { class: "class-charts" });
    sec.appendChild(classBox);
    tasksBox.appendChild(sec);
    sections[dkey] = { columns: columnsFor(dkey), sort: { key: "rank", dir: "ascending" }, table: table, tagSelect: tagSelect, tagBox: tagBox,
                       charts: charts, classBox: classBox, groups: groups };
    tagSelect.addEventListener("change", function () { renderTagCharts(dkey); writeHash(); });
  });
  function renderTasks() {
    DATASET_KEYS.forEach(function (dkey) {
      const s = sections[dkey];
      renderBoard(dkey);
      overallChart(dkey, s.charts);
      if (s.groups.length) renderTagCharts(dkey);
      classCharts(dkey, s.classBox);
    });
  }
  // the URL's keys of a section: the first task keeps the plain names (sort, tags)
  function hashKey(base, dkey) { return dkey === DATASET_KEYS[0] ? base : base + "." + dkey; }

  if (DATA.published.length) {
    document.getElementById("published-block").hidden = false;
    const t = document.getElementById("published");
    const tr = el("tr");
    const pm = union(DATA.published.map(function (p) { return Object.keys(p.metrics || {}); }));
    ["model", "task"].concat(pm, ["source"]).forEach(function (h) { tr.appendChild(el("th", { scope: "col" }, h)); });
    t.tHead.appendChild(tr);
    DATA.published.forEach(function (p) {
      const row = el("tr", { "data-published": p.id });
      const name = el("td", null, p.model);
      name.appendChild(el("span", { class: "badge published" }, "published"));
      row.appendChild(name);
      row.appendChild(el("td", null, p.task || ""));
      pm.forEach(function (m) { row.appendChild(el("td", { class: "num" }, pct((p.metrics || {})[m]))); });
      row.appendChild(el("td", { class: "small" }, p.source.citation + " (" + p.source.url + ")"));
      t.tBodies[0].appendChild(row);
    });
  }

  // --- diffusion charts ----------------------------------------------------------------------
  function renderDiffusionCharts() {
    const diffRuns = runs.filter(function (r) { return r.diffusion; });
    if (!diffRuns.length) return;
    document.getElementById("diffusion-section").hidden = false;
    const box = document.getElementById("diffusion-charts");
    diffRuns.forEach(function (r) {
      const d = r.diffusion;
      const wrap = el("div", { class: "diff-run", "data-run": r.key });
      wrap.appendChild(el("h3", null, r.label + ": " + d.n_timesteps + " timesteps, " + d.n_with_errors + " examples" +
        (d.normalize === "uncond" ? ", scores normalised by the unconditional error" : "")));
      const row = el("div", { class: "charts" });
      const ts = d.mean_timesteps;
      const series = [
        { name: "matching pairs (image j, caption j)", xs: ts, ys: d.mean_error.matched, color: "#2f5bd3" },
        { name: "mismatched pairs", xs: ts, ys: d.mean_error.mismatched, color: "#d1495b" },
      ];
      if (d.mean_error.unconditional) series.push({ name: "unconditional", xs: ts, ys: d.mean_error.unconditional, color: "#707a8a", dash: true });
      const c1 = chartBox("diffusion-mean"), c2 = chartBox("diffusion-k");
      row.appendChild(c1);
      row.appendChild(c2);
      wrap.appendChild(row);
      box.appendChild(wrap);
      draw(c1, lineSpec({ title: "mean error vs timestep", xTitle: "timestep", yTitle: "mean error", yFormat: ".3~g",
                          series: series, dashed: true }));
      const ks = d.by_k.map(function (p) { return p.k; });
      const ser2 = d.metrics.map(function (m, i) {
        return { name: m, xs: ks, ys: d.by_k.map(function (p) { return p[m]; }), color: ["#2f5bd3", "#2a9d8f", "#e9a03b", "#7b4fbf"][i % 4] };
      });
      draw(c2, lineSpec({ title: "score vs number of timesteps used", xTitle: "timesteps (evenly spaced subset, log scale)",
                          yTitle: "score", yFormat: ".0%", yDomain: [0, 1], xlog: true, points: true, series: ser2 }));
    });
  }

  // --- example browser -------------------------------------------------------------------------
  const selA = document.getElementById("run-a"), selB = document.getElementById("run-b");
  const selTag = document.getElementById("filter-tag"), selRel = document.getElementById("filter-relation");
  const selMetric = document.getElementById("filter-metric");
  const list = document.getElementById("examples"), more = document.getElementById("more");
  const search = document.getElementById("search");
  const THUMB_PX = 120;  // displayed size of an image's longest side (small ones: the largest whole multiple below)
  let shown = PAGE, current = [];
  runs.forEach(function (r) { selA.appendChild(el("option", { value: r.key }, r.label)); });
  function fillMetric() {
    const keep = selMetric.value;
    fillMetricSelect(selMetric, perExample(runByKey[selA.value]));
    if (Array.prototype.some.call(selMetric.options, function (o) { return o.value === keep; })) selMetric.value = keep;
  }

  function fillB() {
    const a = runByKey[selA.value];
    const keep = selB.value;
    clear(selB);
    selB.appendChild(el("option", { value: "" }, "(none)"));
    runs.forEach(function (r) {
      if (r.key !== a.key && r.dataset === a.dataset) selB.appendChild(el("option", { value: r.key }, r.label));
    });
    if (Array.prototype.some.call(selB.options, function (o) { return o.value === keep; })) selB.value = keep;
  }
  function fillTags() {
    const ds = DATA.datasets[runByKey[selA.value].dataset];
    const keep = selTag.value;
    clear(selTag);
    selTag.appendChild(el("option", { value: "" }, "(any)"));
    const seen = {};
    const opts = [];
    ds.order.forEach(function (id) {
      const tags = ds.examples[id].tags || {};
      Object.keys(tags).forEach(function (g) {
        tags[g].forEach(function (l) {
          const v = JSON.stringify([g, l]);
          if (!seen[v]) { seen[v] = true; opts.push([g, l, v]); }
        });
      });
    });
    opts.sort(function (x, y) { return x[0] === y[0] ? (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) : (x[0] < y[0] ? -1 : 1); });
    opts.forEach(function (o) { selTag.appendChild(el("option", { value: o[2] }, o[0] + ": " + o[1])); });
    selTag.disabled = opts.length === 0;
    if (Array.prototype.some.call(selTag.options, function (o) { return o.value === keep; })) selTag.value = keep;
  }

  function verdict(run, id) {
    const v = el("div", { class: "verdict" });
    perExample(run).forEach(function (m) {
      const ok = isRight(run, id, m);
      v.appendChild(el("span", { class: ok ? "ok" : "bad" }, m + (ok ? " right" : " wrong")));
    });
    return v;
  }
  function errorCurves(run, id, box) {
    if (!(run.diffusion && run.diffusion.example_errors[id])) return;
    const e = run.diffusion.example_errors[id], ts = run.diffusion.curve_timesteps, cells = run.diffusion.cells;
    const cols = ["#2f5bd3", "#d1495b", "#e9a03b", "#2a9d8f", "#7b4fbf", "#5c946e", "#c45ab3", "#3d8fd1"];
    const ch = chartBox("example-curve");
    box.appendChild(ch);
    draw(ch, lineSpec({ title: "error vs timestep", xTitle: "timestep", yTitle: "error", yFormat: ".3~g", width: 300, height: 140, dashed: true,
      series: e.map(function (ys, i) {
        const c = cells[i];
        return { name: "(i" + c[0] + ",c" + c[1] + ")", xs: ts, ys: ys, color: cols[i % cols.length], dash: c[0] !== c[1] };
      }) }));
  }
  // Winoground-style 2x2: the matrix and the four decisions behind text and image.
  function matrix2x2(run, id, s, box) {
    const t = el("table");
    const h = el("tr");
    h.appendChild(el("th", null, ""));
    h.appendChild(el("th", { title: "caption 0" }, "c0"));
    h.appendChild(el("th", { title: "caption 1" }, "c1"));
    t.appendChild(h);
    const d2 = digitsFor([s[0][0], s[0][1], s[1][0], s[1][1]]);
    [0, 1].forEach(function (j) {
      const tr = el("tr");
      tr.appendChild(el("th", { title: "image " + j }, "i" + j));
      [0, 1].forEach(function (k) {
        tr.appendChild(el("td", { class: j === k ? "match" : "" }, fmt(s[j][k], d2)));
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    const dec = el("div", { class: "decisions" });
    const d = run.decisions[id];
    const items = [
      ["text", "i0: c0 > c1", d[0]],
      ["text", "i1: c1 > c0", d[1]],
      ["image", "c0: i0 > i1", d[2]],
      ["image", "c1: i1 > i0", d[3]],
    ];
    items.forEach(function (it) {
      dec.appendChild(el("div", { class: it[2] ? "ok" : "bad" }, (it[2] ? "\u2713 " : "\u2717 ") + it[0] + " " + it[1]));
    });
    box.appendChild(dec);
  }
  // 1 x N: the captions sorted by this run's score, the correct one marked (caption 0, or the
  // task's own correct captions, e.g. a classification image's class prompts).
  function rankedCaptions(run, id, s, ex, box) {
    const row = s[0];
    const right = ex && ex.correct ? ex.correct : [0];
    const order = row.map(function (v, k) { return k; }).sort(function (x, y) { return row[y] - row[x] || x - y; });
    const ol = el("ol", { class: "ranked" });
    const dr = digitsFor(row);
    order.forEach(function (k) {
      const li = el("li", { class: right.indexOf(k) >= 0 ? "correct" : "", "data-caption": k });
      li.appendChild(el("span", { class: "score" }, fmt(row[k], dr)));
      li.appendChild(el("span", { class: "mark" }, right.indexOf(k) >= 0 ? "\u2713 correct" : "c" + k));
      li.appendChild(document.createTextNode(ex && ex.captions ? ex.captions[k] : "caption " + k));
      ol.appendChild(li);
    });
    box.appendChild(ol);
  }
  // any other shape: the plain matrix
  function matrixPlain(s, box) {
    const t = el("table");
    const h = el("tr");
    h.appendChild(el("th", null, ""));
    s[0].forEach(function (v, k) { h.appendChild(el("th", null, "c" + k)); });
    t.appendChild(h);
    const dp = digitsFor([].concat.apply([], s));
    s.forEach(function (r, j) {
      const tr = el("tr");
      tr.appendChild(el("th", null, "i" + j));
      r.forEach(function (v, k) { tr.appendChild(el("td", { class: j === k ? "match" : "" }, fmt(v, dp))); });
      t.appendChild(tr);
    });
    box.appendChild(t);
  }
  function shapeOf(s) { return s ? s.length + "x" + s[0].length : ""; }
  function matrixBox(run, id, ds) {
    const box = el("div", { class: "matrix", "data-run": run.key });
    const s = run.scores[id];
    box.appendChild(el("div", { class: "title" }, run.label));
    if (!s) { box.appendChild(el("div", { class: "small" }, "not scored by this run")); return box; }
    if (run.decisions[id]) matrix2x2(run, id, s, box);
    else if (s.length === 1) rankedCaptions(run, id, s, ds.examples[id], box);
    else matrixPlain(s, box);
    box.appendChild(verdict(run, id));
    errorCurves(run, id, box);
    return box;
  }

  function card(id, ds, a, b) {
    const ex = ds.examples[id];
    const s = a.scores[id] || (b && b.scores[id]);
    const c = el("div", { class: "example", "data-id": id, "data-shape": shapeOf(s) });
    c.appendChild(el("h4", null, "example " + id));
    const tagText = Object.keys(ex.tags || {}).filter(function (g) { return ex.tags[g].length; })
      .map(function (g) { return g + ": " + ex.tags[g].join(", "); }).join(" \u00b7 ");
    if (tagText) c.appendChild(el("div", { class: "tags" }, tagText));
    const nImages = ex.images ? ex.images.length : (s ? s.length : 0);
    const ranked = s && s.length === 1;
    const pair = el("div", { class: "pair" });
    for (let k = 0; k < nImages; k++) {
      const uri = ex.images ? ex.images[k] : null;
      if (typeof uri === "string" && uri.indexOf("data:image/") === 0) {
        const png = uri.indexOf("data:image/png") === 0;
        const img = el("img", { src: uri, alt: "image " + k + " of example " + id, class: png ? "thumb pixelated" : "thumb" });
        // a small image is shown at a whole multiple of its size, so every pixel stays square and crisp
        img.addEventListener("load", function () {
          const w = img.naturalWidth, h = img.naturalHeight;
          if (!w || !h) return;
          const scale = Math.max(1, Math.floor(THUMB_PX / Math.max(w, h)));
          img.style.width = (w * scale) + "px";
          img.style.height = (h * scale) + "px";
        });
        pair.appendChild(img);
      } else {
        pair.appendChild(el("div", { class: "noimg" }, "image " + k + " not available"));
      }
      if (!ranked) {
        const cap = el("div", { class: "caption" });
        cap.appendChild(el("b", null, "c" + k));
        cap.appendChild(document.createTextNode(ex.captions ? ex.captions[k] : "(caption not available)"));
        pair.appendChild(cap);
      }
    }
    c.appendChild(pair);
    const ms = el("div", { class: "matrices" });
    ms.appendChild(matrixBox(a, id, ds));
    if (b) ms.appendChild(matrixBox(b, id, ds));
    c.appendChild(ms);
    return c;
  }

  // search: the id or any caption holds the text (case-insensitive)
  function matches(ds, id, q) {
    if (String(id).toLowerCase().indexOf(q) >= 0) return true;
    const caps = ds.examples[id].captions || [];
    return caps.some(function (c) { return String(c).toLowerCase().indexOf(q) >= 0; });
  }
  function filtered() {
    const a = runByKey[selA.value], b = selB.value ? runByKey[selB.value] : null;
    const ds = DATA.datasets[a.dataset];
    const metric = selMetric.value;
    const rel = selRel.value;
    const tag = selTag.value ? JSON.parse(selTag.value) : null;
    const q = search.value.trim().toLowerCase();
    return ds.order.filter(function (id) {
      if (!a.outcomes[id]) return false;
      if (q && !matches(ds, id, q)) return false;
      if (tag) {
        const labels = (ds.examples[id].tags || {})[tag[0]] || [];
        if (labels.indexOf(tag[1]) < 0) return false;
      }
      const ra = isRight(a, id, metric);
      if (rel === "a-right") return ra;
      if (rel === "a-wrong") return !ra;
      if (rel === "all") return b ? !!b.outcomes[id] : true;
      if (!b || !b.outcomes[id]) return false;
      const rb = isRight(b, id, metric);
      if (rel === "a-right-b-wrong") return ra && !rb;
      if (rel === "a-wrong-b-right") return !ra && rb;
      if (rel === "both-right") return ra && rb;
      if (rel === "both-wrong") return !ra && !rb;
      return true;
    });
  }

  function renderExamples(reset) {
    const a = runByKey[selA.value], b = selB.value ? runByKey[selB.value] : null;
    const ds = DATA.datasets[a.dataset];
    if (reset) shown = PAGE;
    current = filtered();
    const needsB = ["a-right-b-wrong", "a-wrong-b-right", "both-right", "both-wrong"].indexOf(selRel.value) >= 0;
    document.getElementById("example-count").textContent = current.length + " example(s)" +
      (needsB && !b ? " (choose run B for this filter)" : "") + (current.length > shown ? ", showing " + shown : "");
    document.getElementById("example-count").setAttribute("data-count", current.length);
    document.getElementById("dataset-note").textContent = ds.note || "";
    clear(list);
    current.slice(0, shown).forEach(function (id) { list.appendChild(card(id, ds, a, b)); });
    more.hidden = current.length <= shown;
    writeHash();
  }
  more.addEventListener("click", function () { shown += PAGE; renderExamples(false); });
  selA.addEventListener("change", function () { fillB(); fillMetric(); fillTags(); renderExamples(true); });
  [selB, selTag, selRel, selMetric].forEach(function (s) { s.addEventListener("change", function () { renderExamples(true); }); });
  search.addEventListener("input", function () { renderExamples(true); });

  // --- the view's state lives in the URL's hash, so a link opens the same view ----------------
  let applying = false;
  function viewState() {
    const p = new URLSearchParams();
    const a = runByKey[selA.value], b = selB.value ? runByKey[selB.value] : null;
    if (a) p.set("a", a.run_id);
    p.set("b", b ? b.run_id : "");
    if (selMetric.value) p.set("metric", selMetric.value);
    if (selRel.value !== "all") p.set("show", selRel.value);
    if (selTag.value) p.set("tag", selTag.value);
    if (search.value) p.set("q", search.value);
    DATASET_KEYS.forEach(function (dkey) {
      const s = sections[dkey];
      if (s.groups.length && s.tagSelect.value && s.tagSelect.selectedIndex > 0) p.set(hashKey("tags", dkey), s.tagSelect.value);
      if (s.sort.key !== "rank" || s.sort.dir !== "ascending") p.set(hashKey("sort", dkey), s.sort.key + ":" + s.sort.dir);
    });
    return p.toString();
  }
  function writeHash() {
    if (applying || !ready) return;
    const text = viewState();
    document.getElementById("view-link").setAttribute("href", "#" + text);
    if (window.location.hash.replace(/^#/, "") === text) return;
    try {
      window.history.replaceState(null, "", "#" + text);
    } catch (err) {
      window.location.hash = text;
    }
  }
  function setIf(sel, value) { if (value !== null && hasOption(sel, value)) { sel.value = value; return true; } return false; }
  function applyHash() {
    const p = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    applying = true;
    try {
      const a = runById[p.get("a")];
      if (a) selA.value = a.key;
      fillB();
      fillMetric();
      fillTags();
      if (p.has("b")) {
        const b = runById[p.get("b")];
        selB.value = b && hasOption(selB, b.key) ? b.key : "";
      }
      setIf(selMetric, p.get("metric"));
      if (!setIf(selRel, p.get("show"))) selRel.value = "all";
      if (!setIf(selTag, p.get("tag"))) selTag.value = "";
      search.value = p.get("q") || "";
      DATASET_KEYS.forEach(function (dkey) {
        const s = sections[dkey];
        if (s.groups.length && setIf(s.tagSelect, p.get(hashKey("tags", dkey)))) renderTagCharts(dkey);
        const sort = (p.get(hashKey("sort", dkey)) || "").split(":");
        if (sort.length === 2 && (sort[1] === "ascending" || sort[1] === "descending")) sortBy(dkey, sort[0], sort[1]);
      });
      renderExamples(true);
    } finally {
      applying = false;
    }
  }
  window.addEventListener("hashchange", function () { if (window.location.hash.replace(/^#/, "") !== viewState()) { applyHash(); writeHash(); } });

  // --- the filtered ids as a JSON file ----------------------------------------------------------
  document.getElementById("download").addEventListener("click", function () {
    const a = runByKey[selA.value], b = selB.value ? runByKey[selB.value] : null;
    const payload = {
      report: DATA.title, generated: DATA.generated, task: DATA.datasets[a.dataset].heading,
      run_a: { run_id: a.run_id, label: a.label }, run_b: b ? { run_id: b.run_id, label: b.label } : null,
      metric: selMetric.value || null, show: selRel.value, tag: selTag.value ? JSON.parse(selTag.value) : null,
      search: search.value || null, view: "#" + viewState(), n: current.length, ids: current.slice(),
    };
    const blob = new Blob([JSON.stringify(payload, null, 2) + "\n"], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: "examples-" + a.run_id + (b ? "-vs-" + b.run_id : "") + "-" + selRel.value + ".json" });
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    setTimeout(function () { URL.revokeObjectURL(url); }, 5000);
  });

  // --- start --------------------------------------------------------------------------------------
  let ready = false;
  renderTasks();
  renderDiffusionCharts();
  if (runs.length) {
    fillB();
    fillMetric();
    if (selB.options.length > 1) selB.selectedIndex = 1;
    fillTags();
    if (window.location.hash.length > 1) applyHash();
    else renderExamples(true);
  }
  ready = true;
  writeHash();
  // ready once every chart drawn so far has been drawn (or has failed, which logs an error)
  Promise.all(pending.slice()).then(function () { document.body.setAttribute("data-ready", "1"); });
})();

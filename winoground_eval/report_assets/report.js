"use strict";
// The report's script. Every piece of data goes into the page through textContent or
// setAttribute, never as markup: captions, tags and names are user data.
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const COLORS = ["#2f5bd3", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fbf", "#5c946e", "#c45ab3", "#3d8fd1", "#8d6e63", "#707a8a"];
  const SVGNS = "http://www.w3.org/2000/svg";
  const PAGE = 40;
  const runs = DATA.runs;
  const runByKey = {};
  runs.forEach(function (r, i) { r.color = COLORS[i % COLORS.length]; runByKey[r.key] = r; });
  // The metrics come from the runs (each task declares its own, in result.json); none is named here.
  function union(lists) {
    const out = [];
    lists.forEach(function (l) { l.forEach(function (x) { if (out.indexOf(x) < 0) out.push(x); }); });
    return out;
  }
  function metricNames(r) { return (r.metric_specs || []).map(function (m) { return m.name; }); }
  function perExample(r) { return (r.metric_specs || []).filter(function (m) { return m.per_example; }).map(function (m) { return m.name; }); }
  const METRICS = union(runs.map(metricNames));
  const PER_EXAMPLE = union(runs.map(perExample));
  function isRight(run, id, metric) {
    const o = run.outcomes[id];
    return !!o && isNum(o[metric]) && o[metric] >= 1;
  }

  // --- helpers ---------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function svText(parent, x, y, text, attrs) {
    const t = sv("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    t.textContent = String(text);
    return t;
  }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function pct(x) { return isNum(x) ? (100 * x).toFixed(2) : "-"; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function legend(items) {
    const box = el("div", { class: "legend" });
    items.forEach(function (it) {
      const s = el("span");
      const sw = el("span", { class: "swatch" });
      sw.style.background = it.color;
      s.appendChild(sw);
      s.appendChild(document.createTextNode(it.name));
      box.appendChild(s);
    });
    return box;
  }

  // --- header -------------------------------------------------------------------------------
  document.getElementById("title").textContent = DATA.title;
  document.title = DATA.title;
  document.getElementById("meta").textContent =
    "Generated " + DATA.generated + " by " + DATA.generator.name + " " + DATA.generator.version + "; " + runs.length + " run(s).";
  document.getElementById("license-note").textContent = DATA.license_note;
  const notes = document.getElementById("notes");
  DATA.notes.forEach(function (n) { notes.appendChild(el("li", null, n)); });

  // --- leaderboard ---------------------------------------------------------------------------
  function ciBar(value, ci) {
    const w = 110, h = 12, pad = 4, span = w - 2 * pad;
    const s = sv("svg", { width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img" });
    const label = "score " + pct(value) + (ci ? ", 95% CI " + pct(ci[0]) + " to " + pct(ci[1]) : "");
    const title = sv("title", null, s);
    title.textContent = label;
    sv("line", { x1: pad, y1: h / 2, x2: w - pad, y2: h / 2, stroke: "#d8dce5", "stroke-width": 2 }, s);
    if (ci && isNum(ci[0]) && isNum(ci[1])) {
      sv("rect", { class: "ci", x: pad + ci[0] * span, y: 2, width: Math.max(1, (ci[1] - ci[0]) * span), height: h - 4,
                   fill: "#9db4f0", rx: 2 }, s);
    }
    if (isNum(value)) sv("circle", { cx: pad + value * span, cy: h / 2, r: 3, fill: "#1d2230" }, s);
    return s;
  }

  const FIXED = ["rank", "scorer", "task", "n", "seconds", "unet", "date"];
  const COLUMNS = [
    { key: "rank", label: "#", num: true, value: function (r, i) { return i + 1; } },
    { key: "scorer", label: "scorer", value: function (r) { return r.scorer; } },
    { key: "task", label: "task", value: function (r) { return r.task.name || ""; } },
    { key: "n", label: "n", num: true, value: function (r) { return r.n_examples; } },
  ].concat(METRICS.map(function (m) {
    return { key: FIXED.indexOf(m) < 0 ? m : "metric-" + m, metric: m, label: m, num: true, score: true,
             value: function (r) { const v = (r.metrics || {})[m]; return isNum(v) ? v : null; } };
  })).concat([
    { key: "seconds", label: "s / example", num: true, value: function (r) { return r.compute.seconds_per_example; } },
    { key: "unet", label: "UNet calls / example", num: true, value: function (r) { return r.compute.unet_calls_per_example; } },
    { key: "date", label: "finished", value: function (r) { return r.finished || ""; } },
  ]);
  const board = document.getElementById("leaderboard");
  const rankOf = {};
  runs.forEach(function (r, i) { rankOf[r.key] = i; });
  let sortState = { key: "rank", dir: "ascending" };

  function renderBoardHead() {
    const tr = el("tr");
    COLUMNS.forEach(function (c) {
      const th = el("th", { class: "sortable", "data-key": c.key, scope: "col", tabindex: 0 }, c.label);
      if (sortState.key === c.key) th.setAttribute("aria-sort", sortState.dir);
      th.addEventListener("click", function () { sortBy(c.key); });
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") sortBy(c.key); });
      tr.appendChild(th);
    });
    clear(board.tHead);
    board.tHead.appendChild(tr);
  }
  function cellFor(c, r) {
    const v = c.value(r, rankOf[r.key]);
    if (c.score) {
      const td = el("td", { class: "score", "data-value": isNum(v) ? v : "" });
      if (metricNames(r).indexOf(c.metric) < 0) { td.appendChild(el("span", { class: "v" }, "")); return td; }
      td.appendChild(el("span", { class: "v" + (r.primary === c.metric ? " primary" : "") }, pct(v)));
      const ci = r.ci95 ? r.ci95[c.metric] : null;
      td.appendChild(ciBar(v, ci));
      td.appendChild(el("span", { class: "ci" }, ci ? "95% CI " + pct(ci[0]) + "\u2013" + pct(ci[1]) : "no interval"));
      return td;
    }
    if (c.key === "scorer") {
      const td = el("td", { class: "name", "data-value": v });
      td.appendChild(el("span", null, v));
      if (r.partial) td.appendChild(el("span", { class: "badge partial" }, "partial"));
      if (r.imported) td.appendChild(el("span", { class: "badge" }, "imported"));
      td.appendChild(el("div", { class: "small" }, "run " + r.run_id + (r.superseded.length ? " (supersedes " + r.superseded.join(", ") + ")" : "")));
      return td;
    }
    if (c.key === "task") {
      const td = el("td", { "data-value": v });
      td.appendChild(el("span", null, v));
      td.appendChild(el("div", { class: "small" }, "data " + (r.task.data_fingerprint || "?")));
      return td;
    }
    let text = v;
    if (c.key === "seconds") text = isNum(v) ? v.toFixed(3) : "-";
    if (c.key === "unet") text = isNum(v) ? String(Math.round(v)) : "-";
    if (c.key === "date") text = String(v).replace("T", " ").slice(0, 16);
    return el("td", { class: c.num ? "num" : "", "data-value": v === null || v === undefined ? "" : v }, text);
  }
  function renderBoardBody() {
    const col = COLUMNS.filter(function (c) { return c.key === sortState.key; })[0];
    const sign = sortState.dir === "ascending" ? 1 : -1;
    const ordered = runs.slice().sort(function (a, b) {
      const va = col.value(a, rankOf[a.key]), vb = col.value(b, rankOf[b.key]);
      const na = va === null || va === undefined || va === "", nb = vb === null || vb === undefined || vb === "";
      if (na || nb) return na === nb ? rankOf[a.key] - rankOf[b.key] : (na ? 1 : -1);
      if (va < vb) return -sign;
      if (va > vb) return sign;
      return rankOf[a.key] - rankOf[b.key];
    });
    const body = board.tBodies[0];
    clear(body);
    ordered.forEach(function (r) {
      const tr = el("tr", { "data-run": r.key, "data-run-id": r.run_id });
      COLUMNS.forEach(function (c) { tr.appendChild(cellFor(c, r)); });
      body.appendChild(tr);
    });
  }
  function sortBy(key) {
    const col = COLUMNS.filter(function (c) { return c.key === key; })[0];
    if (sortState.key === key) sortState.dir = sortState.dir === "ascending" ? "descending" : "ascending";
    else sortState = { key: key, dir: col.num && key !== "rank" ? "descending" : "ascending" };
    renderBoardHead();
    renderBoardBody();
  }
  renderBoardHead();
  renderBoardBody();

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

  // --- charts ------------------------------------------------------------------------------------
  function barChart(title, categories, series) {
    const box = el("div", { class: "chart" });
    const bw = 14, gap = 18, left = 40, top = 24, height = 170;
    const groupW = Math.max(1, series.length) * bw + gap;
    const width = left + categories.length * groupW + 10;
    const s = sv("svg", { width: width, height: top + height + 40, role: "img" }, null);
    svText(s, 4, 14, title, { "font-weight": "600" });
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      const y = top + height * (1 - v);
      sv("line", { class: "grid", x1: left, x2: width - 6, y1: y, y2: y }, s);
      svText(s, left - 4, y + 4, Math.round(100 * v), { "text-anchor": "end" });
    });
    categories.forEach(function (cat, ci) {
      const x0 = left + ci * groupW + gap / 2;
      series.forEach(function (se, si) {
        const v = se.values[ci];
        if (!isNum(v)) return;
        const r = sv("rect", { x: x0 + si * bw, y: top + height * (1 - v), width: bw - 2, height: Math.max(0.5, height * v), fill: se.color }, s);
        const t = sv("title", null, r);
        t.textContent = se.name + ", " + cat.label + ": " + pct(v) + (se.n && se.n[ci] !== undefined ? " (n=" + se.n[ci] + ")" : "");
      });
      svText(s, x0 + (series.length * bw) / 2, top + height + 14, cat.label, { "text-anchor": "middle" });
      if (cat.n !== undefined) svText(s, x0 + (series.length * bw) / 2, top + height + 28, "n=" + cat.n, { "text-anchor": "middle", fill: "#5d6475" });
    });
    sv("line", { class: "axis", x1: left, x2: left, y1: top, y2: top + height }, s);
    sv("line", { class: "axis", x1: left, x2: width - 6, y1: top + height, y2: top + height }, s);
    box.appendChild(s);
    return box;
  }

  function lineChart(opts) {
    const box = el("div", { class: "chart" });
    const W = opts.width || 420, H = opts.height || 240, L = 56, R = 12, T = 24, B = 40;
    const s = sv("svg", { width: W, height: H, role: "img" }, null);
    svText(s, 4, 14, opts.title, { "font-weight": "600" });
    let xs = [], ys = [];
    opts.series.forEach(function (se) { xs = xs.concat(se.xs); ys = ys.concat(se.ys.filter(isNum)); });
    if (!xs.length || !ys.length) { box.appendChild(el("p", { class: "hint" }, "no data")); return box; }
    const fx = opts.xlog ? function (x) { return Math.log(Math.max(x, 1e-9)); } : function (x) { return x; };
    let x0 = Math.min.apply(null, xs.map(fx)), x1 = Math.max.apply(null, xs.map(fx));
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    let y0 = opts.ymin !== undefined ? opts.ymin : Math.min.apply(null, ys);
    let y1 = opts.ymax !== undefined ? opts.ymax : Math.max.apply(null, ys);
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const px = function (x) { return L + (W - L - R) * (fx(x) - x0) / (x1 - x0); };
    const py = function (y) { return T + (H - T - B) * (1 - (y - y0) / (y1 - y0)); };
    for (let i = 0; i <= 4; i++) {
      const v = y0 + (y1 - y0) * i / 4;
      sv("line", { class: "grid", x1: L, x2: W - R, y1: py(v), y2: py(v) }, s);
      svText(s, L - 4, py(v) + 4, opts.yfmt ? opts.yfmt(v) : v.toPrecision(3), { "text-anchor": "end" });
    }
    const ticks = opts.xticks || [];
    ticks.forEach(function (v) { svText(s, px(v), H - B + 14, v, { "text-anchor": "middle" }); });
    svText(s, (L + W - R) / 2, H - 6, opts.xlabel, { "text-anchor": "middle", fill: "#5d6475" });
    sv("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }, s);
    sv("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }, s);
    opts.series.forEach(function (se) {
      const pts = [];
      se.xs.forEach(function (x, i) { if (isNum(se.ys[i])) pts.push(px(x).toFixed(1) + "," + py(se.ys[i]).toFixed(1)); });
      const line = sv("polyline", { points: pts.join(" "), fill: "none", stroke: se.color, "stroke-width": 1.8 }, s);
      if (se.dash) line.setAttribute("stroke-dasharray", "4 3");
      const t = sv("title", null, line);
      t.textContent = se.name;
      if (opts.markers) se.xs.forEach(function (x, i) { if (isNum(se.ys[i])) sv("circle", { cx: px(x), cy: py(se.ys[i]), r: 2.5, fill: se.color }, s); });
    });
    box.appendChild(s);
    box.appendChild(legend(opts.series));
    return box;
  }
  function someTicks(xs, n) {
    if (xs.length <= n) return xs.slice();
    const out = [];
    for (let i = 0; i < n; i++) out.push(xs[Math.round(i * (xs.length - 1) / (n - 1))]);
    return out;
  }

  // --- per-tag charts -----------------------------------------------------------------------
  function fillMetricSelect(sel, names) {
    clear(sel);
    names.forEach(function (m) { sel.appendChild(el("option", { value: m }, m)); });
    sel.disabled = names.length === 0;
  }
  fillMetricSelect(document.getElementById("tag-metric"), PER_EXAMPLE);
  function renderTagCharts() {
    const metric = document.getElementById("tag-metric").value;
    const box = document.getElementById("tag-charts");
    clear(box);
    const groups = [];
    runs.forEach(function (r) { Object.keys(r.breakdown || {}).forEach(function (g) { if (groups.indexOf(g) < 0) groups.push(g); }); });
    if (!groups.length) { box.appendChild(el("p", { class: "hint" }, "No per-tag breakdown in these runs.")); return; }
    groups.forEach(function (g) {
      const labels = [];
      runs.forEach(function (r) { Object.keys((r.breakdown || {})[g] || {}).forEach(function (l) { if (labels.indexOf(l) < 0) labels.push(l); }); });
      const cats = labels.map(function (l) {
        const r0 = runs.filter(function (r) { return r.breakdown[g] && r.breakdown[g][l]; })[0];
        return { label: l, n: r0 ? r0.breakdown[g][l].n : undefined };
      });
      const series = runs.map(function (r) {
        return {
          name: r.label, color: r.color,
          values: labels.map(function (l) { const row = (r.breakdown[g] || {})[l]; return row ? row[metric] : null; }),
          n: labels.map(function (l) { const row = (r.breakdown[g] || {})[l]; return row ? row.n : undefined; }),
        };
      });
      const chart = barChart(g + " (" + metric + ", %)", cats, series);
      chart.setAttribute("data-group", g);
      chart.appendChild(legend(series));
      box.appendChild(chart);
    });
  }
  document.getElementById("tag-metric").addEventListener("change", renderTagCharts);
  renderTagCharts();

  // --- diffusion charts ----------------------------------------------------------------------
  const diffRuns = runs.filter(function (r) { return r.diffusion; });
  if (diffRuns.length) {
    const sec = document.getElementById("diffusion-section");
    sec.hidden = false;
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
      row.appendChild(lineChart({ title: "mean error vs timestep", xlabel: "timestep", series: series, xticks: someTicks(ts, 5) }));
      const ks = d.by_k.map(function (p) { return p.k; });
      const ser2 = d.metrics.map(function (m, i) {
        return { name: m, xs: ks, ys: d.by_k.map(function (p) { return p[m]; }), color: ["#2f5bd3", "#2a9d8f", "#e9a03b", "#7b4fbf"][i % 4] };
      });
      row.appendChild(lineChart({ title: "score vs number of timesteps used", xlabel: "timesteps (evenly spaced subset, log scale)",
        series: ser2, xlog: true, xticks: someTicks(ks, 6), ymin: 0, ymax: 1, yfmt: function (v) { return Math.round(100 * v) + "%"; }, markers: true }));
      wrap.appendChild(row);
      box.appendChild(wrap);
    });
  }

  // --- example browser -------------------------------------------------------------------------
  const selA = document.getElementById("run-a"), selB = document.getElementById("run-b");
  const selTag = document.getElementById("filter-tag"), selRel = document.getElementById("filter-relation");
  const selMetric = document.getElementById("filter-metric");
  const list = document.getElementById("examples"), more = document.getElementById("more");
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
    const ch = lineChart({ title: run.label + ": error vs timestep", xlabel: "timestep", xticks: someTicks(ts, 4), width: 320, height: 180,
      series: e.map(function (ys, i) {
        const c = cells[i];
        return { name: "(i" + c[0] + ",c" + c[1] + ")", xs: ts, ys: ys, color: cols[i % cols.length], dash: c[0] !== c[1] };
      }) });
    ch.classList.add("example-curve");
    box.appendChild(ch);
  }
  // Winoground-style 2x2: the matrix and the four decisions behind text and image.
  function matrix2x2(run, id, s, box) {
    const t = el("table");
    const h = el("tr");
    h.appendChild(el("th", null, ""));
    h.appendChild(el("th", { title: "caption 0" }, "c0"));
    h.appendChild(el("th", { title: "caption 1" }, "c1"));
    t.appendChild(h);
    [0, 1].forEach(function (j) {
      const tr = el("tr");
      tr.appendChild(el("th", { title: "image " + j }, "i" + j));
      [0, 1].forEach(function (k) {
        tr.appendChild(el("td", { class: j === k ? "match" : "" }, Number(s[j][k]).toPrecision(4)));
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
  // 1 x N: the captions sorted by this run's score, the correct one (caption 0) marked.
  function rankedCaptions(run, id, s, ex, box) {
    const row = s[0];
    const order = row.map(function (v, k) { return k; }).sort(function (x, y) { return row[y] - row[x] || x - y; });
    const ol = el("ol", { class: "ranked" });
    order.forEach(function (k) {
      const li = el("li", { class: k === 0 ? "correct" : "", "data-caption": k });
      li.appendChild(el("span", { class: "score" }, Number(row[k]).toPrecision(4)));
      li.appendChild(el("span", { class: "mark" }, k === 0 ? "\u2713 correct" : "c" + k));
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
    s.forEach(function (r, j) {
      const tr = el("tr");
      tr.appendChild(el("th", null, "i" + j));
      r.forEach(function (v, k) { tr.appendChild(el("td", { class: j === k ? "match" : "" }, Number(v).toPrecision(4))); });
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
        pair.appendChild(el("img", { src: uri, alt: "image " + k + " of example " + id }));
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

  function filtered() {
    const a = runByKey[selA.value], b = selB.value ? runByKey[selB.value] : null;
    const ds = DATA.datasets[a.dataset];
    const metric = selMetric.value;
    const rel = selRel.value;
    const tag = selTag.value ? JSON.parse(selTag.value) : null;
    return ds.order.filter(function (id) {
      if (!a.outcomes[id]) return false;
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
  }
  more.addEventListener("click", function () { shown += PAGE; renderExamples(false); });
  selA.addEventListener("change", function () { fillB(); fillMetric(); fillTags(); renderExamples(true); });
  [selB, selTag, selRel, selMetric].forEach(function (s) { s.addEventListener("change", function () { renderExamples(true); }); });
  if (runs.length) {
    fillB();
    fillMetric();
    if (selB.options.length > 1) selB.selectedIndex = 1;
    fillTags();
    renderExamples(true);
  }
  document.body.setAttribute("data-ready", "1");
})();

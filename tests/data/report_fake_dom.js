// A minimal stand-in DOM to run the report's script under node (NOT a browser): it catches
// runtime errors on every code path the page takes at load and when its controls change,
// where Chromium is absent. tests/test_report.py drives the real page in headless Chromium.
// Usage: node report_fake_dom.js REPORT.html  -> prints one JSON summary line.
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const dataText = html.split('id="report-data">')[1].split("</script>")[0];
const js = html.split('<script id="report-script">\n')[1].split("</script>")[0];
class Node_ {
  constructor(tag) { this.tagName = tag; this.children = []; this.attrs = {}; this._text = ""; this.listeners = {};
    this.style = {}; this.hidden = false; this.value = ""; this.disabled = false;
    const self = this;
    this.classList = { add(c) { self.attrs.class = ((self.attrs.class || "") + " " + c).trim(); } };
    if (tag === "table") { this.tHead = new Node_("thead"); this.tBodies = [new Node_("tbody")]; }
  }
  get firstChild() { return this.children[0] || null; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); }
  appendChild(c) { this.children.push(c); if (this.tagName === "select" && c.tagName === "option" && this.children.length === 1) this.value = c.attrs.value; return c; }
  setAttribute(k, v) { this.attrs[k] = v; if (k === "value") this.value = v; }
  getAttribute(k) { return this.attrs[k]; }
  set textContent(t) { this._text = t; }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  addEventListener(ev, fn) { this.listeners[ev] = fn; }
  get options() { return this.children; }
  set selectedIndex(i) { this.value = this.children[i].attrs.value; }
  fire(ev) { this.listeners[ev] && this.listeners[ev](); }
}
const ids = {};
function byId(id) {
  if (!ids[id]) {
    let tag = "div";
    if (["published"].includes(id)) tag = "table";
    if (["run-a", "run-b", "filter-tag", "filter-relation", "filter-metric"].includes(id)) tag = "select";
    if (id === "search") tag = "input";
    ids[id] = new Node_(tag);
    if (id === "report-data") ids[id]._text = dataText;
    if (id === "filter-relation") ids[id].value = "all";
  }
  return ids[id];
}
global.document = {
  getElementById: byId,
  createElement: (t) => new Node_(t),
  createElementNS: (ns, t) => new Node_(t),
  createTextNode: (t) => { const n = new Node_("#text"); n._text = t; return n; },
  body: new Node_("body"),
  title: "",
};
// the charting library is not run here: vegaEmbed records each spec it is given
const charts = [];
global.vega = { expressionInterpreter: {} };
global.vegaEmbed = (box, spec, opts) => { charts.push({ spec, opts }); return Promise.resolve({}); };
global.window = { location: { hash: "" }, history: { replaceState: (s, t, url) => { global.window.location.hash = url; } },
                  addEventListener: () => {} };
global.Blob = class { constructor(parts) { this.parts = parts; } };
global.URL = { createObjectURL: () => "blob:fake", revokeObjectURL: () => {} };
eval(js);
setTimeout(summarize, 0);
function summarize() {
function find(node, pred) { if (pred(node)) return node; for (const c of node.children) { const f = find(c, pred); if (f) return f; } return null; }
const board = find(byId("tasks"), (n) => n.tagName === "table");
const tagMetric = find(byId("tasks"), (n) => n.tagName === "select" && n.attrs.class === "tag-metric");
function count(node, pred) { return (pred(node) ? 1 : 0) + node.children.reduce((s, c) => s + count(c, pred), 0); }
const ex = byId("examples");
const summary = {
  ready: document.body.attrs["data-ready"],
  examples: ex.children.length,
  ranked_lists: count(ex, (n) => n.tagName === "ol"),
  correct_marked: count(ex, (n) => n.tagName === "li" && n.attrs.class === "correct"),
  decisions: count(ex, (n) => (n.attrs.class || "") === "decisions"),
  metric_options: byId("filter-metric").children.map((c) => c.attrs.value),
  board_columns: board.tHead.children[0].children.map((c) => c.attrs["data-key"]),
  a_right: {},
  charts: charts.length,
  charts_safe: charts.every((c) => c.opts.ast === true && c.opts.expr === global.vega.expressionInterpreter),
  hash: global.window.location.hash,
};
const a = byId("run-a");
a.children.forEach((o) => {
  a.value = o.attrs.value; a.fire("change");
  byId("filter-relation").value = "a-right"; byId("filter-relation").fire("change");
  summary.a_right[o.attrs.value] = Number(byId("example-count").attrs["data-count"]);
  byId("filter-relation").value = "all"; byId("filter-relation").fire("change");
});
board.tHead.children[0].children.forEach((th) => th.fire("click"));
tagMetric.fire("change");
console.log(JSON.stringify(summary));
}

/* Sortable tables and SVG plots for the report pages (no libraries). */
(function () {
  "use strict";
  const el = window.el;

  function fmt(v, key) {
    if (v === undefined || v === null || Number.isNaN(v)) return "\u2013";
    if (typeof v !== "number") return String(v);
    const k = (key || "").toLowerCase();
    if (k.startsWith("ssim") || k.startsWith("lpips") || Math.abs(v) < 1) return v.toFixed(4);
    return v.toFixed(2);
  }

  /* columns: [{key, label, text?: bool, direction?: 1|-1|null, render?: (row) => Node, format?: (v) => string,
   *            best?: bool}]
   * rows: objects holding the keys, and optionally _notes: {key: [shown, why]} for a score that is not a number
   * (shown instead of the value) or a mean that leaves images out (shown after it).
   * Click a header (or Enter on it) to sort; again to reverse. The sort order is the accent-coloured triangle;
   * which way is better is written under the label ("higher is better"), never as an arrow. */
  class SortableTable {
    constructor(root, opts) {
      this.root = root;
      this.columns = opts.columns;
      this.onRowClick = opts.onRowClick || null;
      this.rowKey = opts.rowKey || null;
      this.sortKey = opts.sortKey || null;
      this.sortDir = opts.sortDir || 1;
      this.selected = null;
      this.setRows(opts.rows || []);
    }

    setRows(rows) { this.rows = rows.slice(); this.render(); }

    sortBy(key) {
      if (this.sortKey === key) this.sortDir = -this.sortDir;
      else {
        this.sortKey = key;
        const col = this.columns.find((c) => c.key === key);
        // Numbers open best first when the direction is known, else descending; text ascending.
        this.sortDir = col.text ? 1 : (col.direction === -1 ? 1 : -1);
      }
      this.render();
    }

    select(key) {
      this.selected = key;
      for (const tr of this.tbody ? this.tbody.children : []) tr.classList.toggle("selected", tr.dataset.key === key);
    }

    render() {
      const rows = this.rows.slice();
      if (this.sortKey) {
        const k = this.sortKey, d = this.sortDir;
        const col = this.columns.find((c) => c.key === k);
        rows.sort((a, b) => {
          const x = a[k], y = b[k];
          if (x === undefined || x === null) return 1;
          if (y === undefined || y === null) return -1;
          if (col && col.text) return d * String(x).localeCompare(String(y), undefined, { numeric: true });
          return d * (x - y);
        });
      }
      const best = {};
      for (const c of this.columns) {
        if (!c.best || !c.direction) continue;
        const vals = this.rows.map((r) => r[c.key]).filter((v) => typeof v === "number");
        if (vals.length > 1) best[c.key] = c.direction > 0 ? Math.max(...vals) : Math.min(...vals);
      }
      const head = el("tr", {}, this.columns.map((c) => {
        const sortable = c.sortable !== false;
        const arrow = this.sortKey === c.key ? (this.sortDir > 0 ? "\u25B4" : "\u25BE") : "";
        const better = c.direction ? (c.direction > 0 ? "higher is better" : "lower is better") : "";
        const th = el("th", { class: (c.text ? "text " : "") + (sortable ? "sortable" : ""),
          title: [c.title, better, sortable ? "click to sort" : ""].filter(Boolean).join("; ") }, [
          document.createTextNode(c.label),
          el("span", { class: "arrow", text: arrow, "aria-hidden": "true" }),
          better ? el("span", { class: "dir", text: better }) : null,
        ]);
        if (this.sortKey === c.key) th.setAttribute("aria-sort", this.sortDir > 0 ? "ascending" : "descending");
        if (sortable) {
          th.tabIndex = 0;
          th.addEventListener("click", () => this.sortBy(c.key));
          th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.sortBy(c.key); } });
        }
        th.dataset.key = c.key;
        return th;
      }));
      this.tbody = el("tbody", {}, rows.map((r) => {
        const tr = el("tr", {}, this.columns.map((c) => {
          const td = el("td", { class: c.text ? "text" : "" });
          if (c.render) { const node = c.render(r); if (node) td.appendChild(node); }
          else if (c.format) td.textContent = c.format(r[c.key]);
          else td.textContent = c.text ? String(r[c.key] ?? "") : fmt(r[c.key], c.key);
          const note = r._notes && r._notes[c.key];
          if (note && !c.text) {
            if (typeof r[c.key] === "number") td.appendChild(el("sup", { class: "note", text: note[0] }));
            else { td.textContent = note[0]; td.classList.add("missing"); }
            td.title = note[1];
            td.classList.add("noted");
          }
          if (best[c.key] !== undefined && r[c.key] === best[c.key]) td.classList.add("best");
          return td;
        }));
        if (this.rowKey) tr.dataset.key = r[this.rowKey];
        if (this.onRowClick) {
          tr.classList.add("clickable");
          tr.tabIndex = 0;
          tr.addEventListener("click", () => this.onRowClick(r));
          tr.addEventListener("keydown", (e) => { if (e.key === "Enter") this.onRowClick(r); });
        }
        if (this.selected !== null && tr.dataset.key === this.selected) tr.classList.add("selected");
        return tr;
      }));
      const table = el("table", { class: "data" }, [el("thead", {}, [head]), this.tbody]);
      this.root.replaceChildren(el("div", { class: "table-wrap" }, [table]));
    }
  }

  const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#a61e4d", "#5c940d"];
  const SVGNS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const n = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function ticks(lo, hi, n) {
    if (lo === hi) { lo -= 1; hi += 1; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  /* series: [{name, points: [{x, y, label?}]}]; opts: {title, xLabel, yLabel, lines, highlightX, invertY} */
  function plot(root, series, opts) {
    const W = 520, H = 330, m = { l: 58, r: 18, t: 30, b: 44 };
    const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (pts.length) {  // room for the longest tick label left of the axis, and the axis title beside it
      const ys = pts.map((p) => p.y), span = Math.max(...ys) - Math.min(...ys);
      const digits = span > 0 ? Math.max(0, Math.min(4, 2 - Math.floor(Math.log10(span)))) : 2;
      const longest = Math.max(...ys.map((v) => String(+v.toFixed(digits)).length));
      m.l = Math.max(58, 30 + 6.2 * longest);
    }
    const s = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.title || "" });
    s.appendChild(svg("text", { x: m.l, y: 18, class: "title" }, opts.title || ""));
    if (!pts.length) { root.replaceChildren(s); return; }
    let [x0, x1] = [Math.min(...pts.map((p) => p.x)), Math.max(...pts.map((p) => p.x))];
    let [y0, y1] = [Math.min(...pts.map((p) => p.y)), Math.max(...pts.map((p) => p.y))];
    const px = (x1 - x0) * 0.06 || 0.5, py = (y1 - y0) * 0.1 || 0.5;
    x0 -= px; x1 += px; y0 -= py; y1 += py;
    const X = (v) => m.l + (v - x0) / (x1 - x0) * (W - m.l - m.r);
    const Y = (v) => opts.invertY ? m.t + (v - y0) / (y1 - y0) * (H - m.t - m.b) : H - m.b - (v - y0) / (y1 - y0) * (H - m.t - m.b);
    for (const v of ticks(y0, y1, 5)) {
      if (v < y0 || v > y1) continue;
      s.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: "grid" }));
      s.appendChild(svg("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, String(+v.toFixed(4))));
    }
    for (const v of ticks(x0, x1, 6)) {
      if (v < x0 || v > x1) continue;
      s.appendChild(svg("line", { x1: X(v), x2: X(v), y1: H - m.b, y2: H - m.b + 4, class: "axis" }));
      s.appendChild(svg("text", { x: X(v), y: H - m.b + 16, "text-anchor": "middle" }, String(+v.toFixed(4))));
    }
    s.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
    s.appendChild(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }));
    s.appendChild(svg("text", { x: (m.l + W - m.r) / 2, y: H - 8, "text-anchor": "middle" }, opts.xLabel || ""));
    s.appendChild(svg("text", { x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, opts.yLabel || ""));
    if (opts.highlightX !== undefined && opts.highlightX !== null) {
      s.appendChild(svg("line", { x1: X(opts.highlightX), x2: X(opts.highlightX), y1: m.t, y2: H - m.b, class: "current" }));
    }
    series.forEach((ser, i) => {
      const color = PALETTE[i % PALETTE.length];
      const good = ser.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
      if (opts.lines && good.length > 1) {
        s.appendChild(svg("polyline", { points: good.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
      }
      for (const p of good) {
        const hot = p.highlight;
        const c = svg("circle", { cx: X(p.x), cy: Y(p.y), r: hot ? 6 : 3.5, fill: hot ? "#fff" : color, stroke: color, "stroke-width": hot ? 3 : 1 });
        c.appendChild(svg("title", {}, `${ser.name}: ${p.label !== undefined ? p.label + ": " : ""}(${+p.x.toFixed(4)}, ${+p.y.toFixed(4)})`));
        s.appendChild(c);
        if (p.label !== undefined && opts.pointLabels) s.appendChild(svg("text", { x: X(p.x) + 6, y: Y(p.y) - 6, class: "pt-label" }, p.label));
      }
    });
    const legend = el("div", { class: "legend" }, series.map((ser, i) => el("span", {}, [
      el("i", { style: `background:${PALETTE[i % PALETTE.length]}` }), document.createTextNode(ser.name)])));
    root.replaceChildren(s, series.length > 1 || opts.alwaysLegend ? legend : document.createTextNode(""));
  }

  window.SortableTable = SortableTable;
  window.plot = plot;
  window.fmt = fmt;
})();

/* report.html: the test or sweep page, drawn from the JSON in #report-data. */
(function () {
  "use strict";
  const el = window.el, fmt = window.fmt;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const app = document.getElementById("app");
  const metrics = data.metrics || [];
  const metricCols = (best) => metrics.map((m) => ({ key: m.key, label: m.label, direction: m.direction, best }));

  const prov = data.provenance || {};
  const provModels = prov.models || [];

  /* What was compared: each model's file (path and SHA-256), network, scale, precision; the command and version. */
  function provenance() {
    if (!provModels.length && !prov.command) return null;
    const rows = provModels.map((m) => el("tr", {}, [
      el("td", { class: "text", text: m.label + (m.role ? ` (${m.role})` : "") }),
      el("td", { class: "text wrap mono", text: m.path || m.source || "" }),
      el("td", { class: "text mono", title: m.sha256 || "", text: m.sha256 ? m.sha256.slice(0, 16) + "\u2026" : "\u2013" }),
      el("td", { class: "text", text: [m.network, m.network_options ? Object.entries(m.network_options).map(([k, v]) => `${k}=${v}`).join(", ") : ""].filter(Boolean).join(": ") }),
      el("td", { text: m.scale ? `x${m.scale}` : "" }),
      el("td", { class: "text", text: [m.precision, m.device].filter(Boolean).join(" on ") }),
    ]));
    const table = el("div", { class: "table-wrap" }, [el("table", { class: "data prov" }, [
      el("thead", {}, [el("tr", {}, ["model", "file", "SHA-256", "network", "scale", "precision"].map((h) => el("th", { class: "text", text: h })))]),
      el("tbody", {}, rows)])]);
    const facts = [
      prov.command ? el("div", {}, [el("span", { class: "muted", text: "command: " }), el("code", { class: "wrap", text: prov.command })]) : null,
      el("div", { class: "muted", text: [prov.esrgan_version ? `esrgan ${prov.esrgan_version}` : "", prov.torch_version ? `torch ${prov.torch_version}` : "", prov.created || ""].filter(Boolean).join(" \u00b7 ") }),
    ];
    return el("details", { class: "small provenance", open: "" }, [el("summary", { text: "what was compared (files, SHA-256, network, precision, command)" }), table, ...facts]);
  }

  function header(subtitle) {
    return el("header", {}, [
      el("h1", { text: data.name }),
      el("div", { class: "muted", text: subtitle }),
      provenance(),
      data.conventions ? el("details", { class: "small", style: "margin-top:6px" }, [
        el("summary", { text: "scoring conventions" }), el("p", { text: data.conventions })]) : null,
    ]);
  }

  function setPicker(onChange) {
    if (data.sets.length < 2) return null;
    const sel = el("select", { "aria-label": "test set", class: "set-select" },
      data.sets.map((s, i) => el("option", { value: String(i), text: s.name })));
    sel.addEventListener("change", () => onChange(+sel.value));
    return el("label", { class: "field" }, [document.createTextNode("test set"), sel]);
  }

  /* Image chooser: previous / next, a drop-down, and a strip of lazily loaded thumbnails. */
  class ImagePicker {
    constructor(root, onChange) {
      this.root = root; this.onChange = onChange; this.images = []; this.index = 0;
      this.select = el("select", { "aria-label": "image", class: "image-select", onchange: () => this.go(+this.select.value) });
      this.strip = el("div", { class: "thumbs" });
      root.replaceChildren(el("div", { class: "row" }, [
        el("button", { type: "button", text: "\u25C0", title: "previous image (\u2190)", onclick: () => this.go(this.index - 1) }),
        this.select,
        el("button", { type: "button", text: "\u25B6", title: "next image (\u2192)", onclick: () => this.go(this.index + 1) }),
        this.counter = el("span", { class: "muted small" }),
      ]), this.strip);
    }
    setImages(images, index) {
      this.images = images;
      this.select.replaceChildren(...images.map((im, i) => el("option", { value: String(i), text: im.name })));
      this.strip.replaceChildren(...images.map((im, i) => el("button", { type: "button", title: im.name, onclick: () => this.go(i) }, [
        im.thumb ? el("img", { src: im.thumb, alt: im.name, loading: "lazy" }) : null, el("span", { text: im.name })])));
      this.go(index || 0);
    }
    go(i) {
      if (!this.images.length) return;
      this.index = (i + this.images.length) % this.images.length;
      this.select.value = String(this.index);
      this.counter.textContent = `${this.index + 1} / ${this.images.length}`;
      [...this.strip.children].forEach((b, k) => b.classList.toggle("on", k === this.index));
      const on = this.strip.children[this.index];
      if (on && on.scrollIntoView) on.scrollIntoView({ block: "nearest", inline: "nearest" });
      this.onChange(this.images[this.index], this.index);
    }
  }

  // ------------------------------------------------------------------ test report
  function testPage() {
    const nImages = data.sets.reduce((n, s) => n + s.images.length, 0);
    app.replaceChildren(header(`x${data.scale} test \u00b7 ${data.models.length} model(s): ${data.models.join(", ")} \u00b7 ` +
      `${data.sets.length} set(s), ${nImages} image(s)`));

    // Summary: one sortable table per set, rows = models.
    const summary = el("section", { class: "card", id: "summary" }, [el("h2", { text: "Mean per set" })]);
    const summaryGrid = el("div", { class: "cols" });
    for (const set of data.sets) {
      const box = el("div", { class: "set-summary", "data-set": set.name });
      const notes = set.mean_notes || {};
      const rows = Object.entries(set.means).map(([model, m]) => ({ model, ...m, _notes: notes[model] }));
      new window.SortableTable(box, { columns: [{ key: "model", label: "model", text: true }, ...metricCols(true)], rows });
      const left = Object.entries(notes).flatMap(([model, n]) => Object.entries(n).map(([k, v]) =>
        el("li", { text: `${model}, ${(metrics.find((m) => m.key === k) || { label: k }).label}: ${v[1]}` })));
      summaryGrid.appendChild(el("div", { class: "set-box" }, [el("h3", { text: `${set.name} (${set.images.length} images)` }), box,
        left.length ? el("ul", { class: "muted small notes" }, left) : null]));
    }
    summary.appendChild(summaryGrid);
    summary.appendChild(el("p", { class: "muted small", text: "Click a column (or focus it and press Enter) to sort; under each metric: which way is better; the best value per column is green. * : a mean that leaves images out (hover for which)." }));

    // Comparison viewer.
    let setIndex = 0;
    const compare = el("section", { class: "card", id: "compare" }, [el("h2", { text: "Compare" })]);
    const pickerRow = el("div", { class: "row" });
    const pickerBox = el("div", { class: "grow" });
    const viewerBox = el("div", { id: "viewer" });
    const scoreBox = el("div", { class: "image-scores", style: "margin-top:10px" });
    compare.append(pickerRow, viewerBox, scoreBox);
    const viewer = new window.CompareView(viewerBox, { sources: [] });
    let wanted = null;  // the model a per-image row asked for: shown on the right
    const picker = new ImagePicker(pickerBox, (img) => { showImage(img, wanted); wanted = null; });
    const sp = setPicker((i) => { setIndex = i; loadSet(); });
    if (sp) pickerRow.appendChild(sp);
    pickerRow.appendChild(pickerBox);

    // Per-image table: one row per (image, model).
    const perImage = el("section", { class: "card", id: "per-image" }, [el("h2", { text: "Per image" })]);
    const filterRow = el("div", { class: "row", style: "margin-bottom:8px" });
    const modelFilter = el("select", { "aria-label": "model filter" },
      [el("option", { value: "", text: "all models" }), ...data.models.map((m) => el("option", { value: m, text: m }))]);
    filterRow.append(el("label", { class: "field" }, [document.createTextNode("model"), modelFilter]),
      el("span", { class: "muted small", text: "Click a row to open the image in the viewer." }));
    const tableBox = el("div", { id: "image-table" });
    perImage.append(filterRow, tableBox);
    const imageTable = new window.SortableTable(tableBox, {
      columns: [
        { key: "thumb", label: "", sortable: false, render: (r) => r.thumb ? el("img", { class: "thumb", src: r.thumb, alt: "", loading: "lazy" }) : null },
        { key: "image", label: "image", text: true }, { key: "model", label: "model", text: true }, ...metricCols(false)],
      rows: [], rowKey: "_key",
      onRowClick: (r) => { wanted = r.model; picker.go(r.index); compare.scrollIntoView({ behavior: "smooth", block: "start" }); },
    });
    modelFilter.addEventListener("change", () => fillTable());

    function fillTable() {
      const set = data.sets[setIndex];
      const only = modelFilter.value;
      const rows = [];
      set.images.forEach((im, index) => {
        for (const [model, s] of Object.entries(im.scores)) {
          if (!only || only === model) rows.push({ image: im.name, model, thumb: im.thumb, index, ...s, _notes: (im.notes || {})[model], _key: `${im.name}\u0000${model}` });
        }
      });
      imageTable.setRows(rows);
    }

    function showImage(img, model) {
      const srcs = img.sources;
      // Default: the baseline (first) on the left, the first network on the right; a row of model X shows X
      // on the right (against the baseline, or HR when X is the baseline).
      const keep = viewer.sources.length === srcs.length;
      let left = keep ? viewer.left : 0, right = keep ? viewer.right : Math.min(1, srcs.length - 1);
      const at = model ? srcs.findIndex((s) => s.label === model) : -1;
      if (at >= 0) {
        right = at;
        if (left === at) left = at === 0 ? srcs.length - 1 : 0;
      }
      viewer.setSources(srcs, left, right);
      if (!srcs.length) viewerBox.querySelector(".cmp-empty").textContent = "No images saved for this run (esrgan test --no-save-img).";
      const rows = Object.entries(img.scores).map(([m, s]) => ({ model: m, ...s, _notes: (img.notes || {})[m] }));
      scoreBox.replaceChildren(el("h3", { text: img.name }));
      const t = el("div");
      scoreBox.appendChild(t);
      new window.SortableTable(t, { columns: [{ key: "model", label: "model", text: true }, ...metricCols(true)], rows });
      imageTable.select(`${img.name}\u0000${model || viewer.sources[viewer.right] && viewer.sources[viewer.right].label}`);
    }

    function loadSet() {
      fillTable();
      picker.setImages(data.sets[setIndex].images, 0);
    }

    app.append(summary, compare, perImage);
    loadSet();
    document.addEventListener("keydown", (e) => {
      if (e.target.closest && e.target.closest("input, select, textarea, [role=slider]")) return;
      if (e.key === "ArrowRight") picker.go(picker.index + 1);
      else if (e.key === "ArrowLeft") picker.go(picker.index - 1);
    });
  }

  // ------------------------------------------------------------------ sweep report
  function sweepPage() {
    const alphas = data.alphas;
    // The end points by name (sweep.json's provenance), else by role.
    const endA = (provModels[0] && provModels[0].label) || "PSNR model", endB = (provModels[1] && provModels[1].label) || "GAN model";
    app.replaceChildren(header(`x${data.scale} network interpolation \u00b7 \u03b1 from ${alphas[0]} (${endA}) to ` +
      `${alphas[alphas.length - 1]} (${endB}) \u00b7 ${alphas.length} steps \u00b7 ${data.sets.length} set(s)`));
    let setIndex = 0, alphaIndex = 0;

    // Table: rows = alpha, columns = set x metric.
    const summary = el("section", { class: "card", id: "summary" }, [el("h2", { text: "Mean per alpha" })]);
    const tableBox = el("div", { id: "sweep-table" });
    const columns = [{ key: "alpha", label: "\u03b1", title: `0 = ${endA}, 1 = ${endB}`, format: (v) => String(v) }];
    for (const set of data.sets) for (const m of metrics) {
      columns.push({ key: `${set.name}|${m.key}`, label: data.sets.length > 1 ? `${set.name} ${m.label}` : m.label, direction: m.direction, best: true });
    }
    const rows = alphas.map((a) => {
      const r = { alpha: +a };
      for (const set of data.sets) for (const m of metrics) r[`${set.name}|${m.key}`] = (set.means[a] || {})[m.key];
      return r;
    });
    const table = new window.SortableTable(tableBox, { columns, rows, rowKey: "alpha",
      onRowClick: (r) => setAlpha(alphas.indexOf(String(r.alpha)) >= 0 ? alphas.indexOf(String(r.alpha)) : alphas.findIndex((a) => +a === r.alpha)) });
    summary.append(tableBox, el("p", { class: "muted small", text: "Click a column to sort, a row to show that \u03b1 below." }));

    // The declared selection criterion's choice per set (sweep.json "selection"), a button to show it.
    const sel = data.selection;
    const chosenIndex = sel ? alphas.indexOf((sel.sets[data.sets[0].name] || {}).alpha) : -1;
    if (sel) {
      const label = (k) => (metrics.find((m) => m.key === k) || { label: k }).label;
      const items = Object.entries(sel.sets).map(([set, c]) => el("li", {}, [
        el("strong", { text: `${set}: ` }),
        document.createTextNode(c.alpha === null ? "no \u03b1 meets the conditions" : `\u03b1 = ${c.alpha}`),
        el("span", { class: "muted", text: ` (${c.bounds})` + (c.alpha === null ? "" : ": " +
          Object.entries(c.values).map(([k, v]) => `${label(k)} ${fmt(v, k)}`).join(", ")) }),
        c.alpha === null ? null : el("button", { type: "button", text: "show", onclick: () => setAlpha(alphas.indexOf(c.alpha)) }),
      ]));
      summary.append(el("div", { id: "selection", class: "notice" }, [
        el("div", {}, [el("strong", { text: "Selected \u03b1" }), document.createTextNode(` by the declared criterion: \u201c${sel.criterion}\u201d`)]),
        el("ul", {}, items)]));
    }

    // Plots: a metric against alpha, and the perception-distortion plane.
    const plots = el("section", { class: "card", id: "plots" }, [el("h2", { text: "Plots" })]);
    const higher = metrics.filter((m) => m.direction === 1);
    const perceptual = metrics.filter((m) => m.direction === -1 && !m.input && !/^(rmse|mse)/i.test(m.key));
    const distortion = metrics.find((m) => /^psnr_y$/i.test(m.key)) || metrics.find((m) => /^psnr/i.test(m.key)) || higher[0];
    const yMetric = el("select", { "aria-label": "plotted metric" }, metrics.map((m) => el("option", { value: m.key, text: m.label })));
    if (distortion) yMetric.value = distortion.key;
    const pdMetric = el("select", { "aria-label": "perceptual metric" }, perceptual.map((m) => el("option", { value: m.key, text: m.label })));
    const plotA = el("div", { id: "plot-alpha" }), plotB = el("div", { id: "plot-pd" });
    plots.append(el("div", { class: "cols" }, [
      el("div", {}, [el("label", { class: "field" }, [document.createTextNode("metric"), yMetric]), plotA]),
      el("div", {}, [perceptual.length ? el("label", { class: "field" }, [document.createTextNode("perceptual metric"), pdMetric]) : null, plotB]),
    ]));
    yMetric.addEventListener("change", drawPlots);
    pdMetric.addEventListener("change", drawPlots);

    function drawPlots() {
      const cur = +alphas[alphaIndex];
      const m = metrics.find((x) => x.key === yMetric.value);
      if (m) {
        window.plot(plotA, data.sets.map((set) => ({ name: set.name, points: alphas.map((a) => ({ x: +a, y: (set.means[a] || {})[m.key], label: a, highlight: +a === cur })) })),
          { title: `${m.label} against \u03b1`, xLabel: `\u03b1 (0 = ${endA}, 1 = ${endB})`, yLabel: m.label + (m.direction ? (m.direction > 0 ? " (higher is better)" : " (lower is better)") : ""), lines: true, highlightX: cur });
      }
      const p = perceptual.find((x) => x.key === pdMetric.value);
      if (p && distortion) {
        window.plot(plotB, data.sets.map((set) => ({ name: set.name, points: alphas.map((a) => ({ x: (set.means[a] || {})[distortion.key], y: (set.means[a] || {})[p.key], label: "\u03b1=" + a, highlight: +a === cur })) })),
          { title: "Perception-distortion plane", xLabel: `${distortion.label} (distortion: right is better)`, yLabel: `${p.label} (perception: lower is better)`, lines: true, pointLabels: true });
      } else {
        plotB.replaceChildren(el("h3", { text: "Perception-distortion plane" }), el("p", { class: "notice",
          text: "This sweep has no perceptual metric (NIQE, LPIPS) in sweep.json, so there is no perception-distortion plot: " +
            "only distortion was measured. Run the sweep with a perceptual metric to see the trade-off." }));
      }
    }

    // Explore: alpha slider over one image's outputs, compared with HR or an end point.
    const explore = el("section", { class: "card", id: "explore" }, [el("h2", { text: "Scrub through \u03b1" })]);
    const slider = el("input", { type: "range", min: "0", max: String(alphas.length - 1), step: "1", value: "0", id: "alpha-slider", "aria-label": "alpha", style: "width:100%" });
    const alphaLabel = el("div", { class: "alpha-label mono", id: "alpha-value" });
    const pickerRow = el("div", { class: "row" });
    const pickerBox = el("div", { class: "grow" });
    const viewerBox = el("div", { id: "viewer" });
    explore.append(pickerRow, el("div", { class: "row", style: "margin:8px 0" }, [
      el("span", { class: "muted small end", text: endA, title: "\u03b1 = 0" }), el("div", { class: "grow" }, [slider]),
      el("span", { class: "muted small end", text: endB, title: "\u03b1 = 1" })]), alphaLabel, viewerBox);
    const sp = setPicker((i) => { setIndex = i; picker.setImages(data.sets[setIndex].images, 0); });
    if (sp) pickerRow.appendChild(sp);
    pickerRow.appendChild(pickerBox);
    const viewer = new window.CompareView(viewerBox, { sources: [] });
    let current = null;
    const picker = new ImagePicker(pickerBox, (img) => { current = img; showImage(); });
    slider.addEventListener("input", () => setAlpha(+slider.value));

    function alphaSources(img) {
      const a = alphas[alphaIndex];
      const srcs = [{ label: `\u03b1 = ${a}`, src: img.outputs[a] }];
      if (img.hr) srcs.push({ label: "HR", src: img.hr });
      if (img.bicubic) srcs.push({ label: "bicubic", src: img.bicubic });
      srcs.push({ label: `\u03b1 = ${alphas[0]} (${endA})`, src: img.outputs[alphas[0]] });
      srcs.push({ label: `\u03b1 = ${alphas[alphas.length - 1]} (${endB})`, src: img.outputs[alphas[alphas.length - 1]] });
      return srcs.filter((s) => s.src);
    }

    function showImage() {
      if (!current) return;
      const srcs = alphaSources(current);
      const keep = viewer.sources.length === srcs.length;
      viewer.setSources(srcs, 0, keep ? viewer.right : 1);
      if (!srcs.length) viewerBox.querySelector(".cmp-empty").textContent = "No images saved for this sweep.";
      // Warm the cache so scrubbing is smooth: this image's outputs at every alpha.
      for (const a of alphas) if (current.outputs[a]) { const im = new Image(); im.src = current.outputs[a]; }
      updateLabel();
    }

    function updateLabel() {
      const a = alphas[alphaIndex];
      const s = current && current.scores ? current.scores[a] || {} : {};
      const set = data.sets[setIndex];
      const why = current && current.notes ? current.notes[a] || {} : {};
      const parts = metrics.map((m) => `${m.label} ${s[m.key] === undefined && why[m.key] ? why[m.key][0] : fmt(s[m.key], m.key)}`);
      const mean = metrics.map((m) => `${m.label} ${fmt((set.means[a] || {})[m.key], m.key)}`);
      alphaLabel.replaceChildren(el("strong", { text: `\u03b1 = ${a}` }),
        document.createTextNode(current ? `  \u00b7 ${current.name}: ${parts.join(", ")}` : ""),
        el("div", { class: "muted small", text: `${set.name} mean: ${mean.join(", ")}` }));
    }

    function setAlpha(i) {
      if (i < 0 || i >= alphas.length) return;
      alphaIndex = i;
      slider.value = String(i);
      if (current && current.outputs[alphas[i]] && viewer.sources.length) {
        viewer.replaceSource(0, { label: `\u03b1 = ${alphas[i]}`, src: current.outputs[alphas[i]] });
      }
      table.select(String(+alphas[i]));
      updateLabel();
      drawPlots();
    }

    app.append(summary, plots, explore);
    picker.setImages(data.sets[setIndex].images, 0);
    setAlpha(chosenIndex >= 0 ? chosenIndex : 0);
  }

  // ------------------------------------------------------------------ training pairs (prepare degrade --preview)
  function degradationsPage() {
    const images = data.steps.flatMap((s) => s.pairs.map((p) => ({ ...p, thumb: p.lq_big })));
    app.replaceChildren(header(`x${data.scale} training pairs \u00b7 ${data.steps.length} step(s), ${images.length} pair(s)`));
    const intro = el("section", { class: "card", id: "about" }, [el("p", { text: data.description })]);
    const compare = el("section", { class: "card", id: "compare" }, [el("h2", { text: "LR against its target" })]);
    const pickerBox = el("div", { class: "grow" });
    const viewerBox = el("div", { id: "viewer" });
    const sizes = el("div", { class: "muted small", id: "pair-sizes" });
    compare.append(el("div", { class: "row" }, [pickerBox]), viewerBox, sizes);
    const viewer = new window.CompareView(viewerBox, { sources: [] });
    const picker = new ImagePicker(pickerBox, (img) => {
      viewer.setSources([{ label: `LR (x${data.scale}, pixels repeated)`, src: img.lq_big }, { label: "target", src: img.gt }], 0, 1);
      sizes.textContent = `LR ${img.lq_size} (fed to the network) \u00b7 target ${img.gt_size}`;
    });
    const gallery = el("section", { class: "card", id: "gallery" }, [el("h2", { text: "Every pair, by training step" })]);
    for (const step of data.steps) {
      gallery.append(el("h3", { text: `iteration ${step.iteration}` }), el("div", { class: "pairs" }, step.pairs.map((p) =>
        el("button", { type: "button", class: "pair", title: p.name, onclick: () => { picker.go(images.findIndex((q) => q.gt === p.gt)); compare.scrollIntoView({ behavior: "smooth", block: "start" }); } }, [
          el("img", { src: p.lq_big, alt: `${p.name}: LR`, loading: "lazy", class: "nearest" }),
          el("img", { src: p.gt, alt: `${p.name}: target`, loading: "lazy" }),
          el("span", { class: "small", text: p.name })]))));
    }
    app.append(intro, compare, gallery);
    picker.setImages(images, 0);
  }

  try {
    if (data.kind === "sweep") sweepPage(); else if (data.kind === "degradations") degradationsPage(); else testPage();
  } catch (err) {
    app.replaceChildren(el("p", { class: "error", text: "The report could not be drawn: " + err }));
    throw err;
  }
})();

/* Comparison viewer shared by report.html and the `esrgan serve` page.
 *
 * new CompareView(element, {sources: [{label, src, nearest?}], left: 0, right: 1})
 * (``nearest``: drawn with square pixels at every zoom, e.g. the small input shown at the output's size)
 * Two modes: "slider" (two images stacked, a draggable divider shows the left one on its left)
 * and "side by side" (every source in a grid). Zoom and pan are one state shared by every image,
 * so all views stay aligned pixel for pixel. Images of other sizes (an LR input) are drawn
 * stretched to the largest one's size. Wheel: zoom at the cursor; drag: pan; double-click: fit / 1:1.
 */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) if (c) node.appendChild(c);
    return node;
  }

  class CompareView {
    constructor(root, opts) {
      this.root = root;
      this.sources = [];
      this.left = 0;
      this.right = 1;
      this.mode = opts.mode || "slider";
      this.split = 0.5;
      this.zoom = 1;
      this.x = 0;
      this.y = 0;
      this.fitted = true;
      this.base = null; // {w, h}: the size every image is drawn at
      this.build();
      this.setSources(opts.sources || [], opts.left, opts.right);
    }

    build() {
      const bar = el("div", { class: "cmp-bar" });
      this.modeButtons = {};
      for (const [mode, text] of [["slider", "Slider"], ["grid", "Side by side"]]) {
        const b = el("button", { class: "seg", type: "button", text, "data-mode": mode, onclick: () => this.setMode(mode) });
        this.modeButtons[mode] = b;
      }
      const seg = el("span", {}, [this.modeButtons.slider, this.modeButtons.grid]);
      this.leftSelect = el("select", { "aria-label": "left image", class: "cmp-left", onchange: () => this.choose(+this.leftSelect.value, this.right) });
      this.rightSelect = el("select", { "aria-label": "right image", class: "cmp-right", onchange: () => this.choose(this.left, +this.rightSelect.value) });
      this.pickers = el("span", { class: "row", style: "gap:6px" }, [this.leftSelect, el("span", { class: "muted", text: "|" }), this.rightSelect]);
      this.zoomLabel = el("span", { class: "zoom", text: "fit" });
      const zoomBy = (f) => { const r = this.viewRect(); this.zoomAt(this.zoom * f, r.width / 2, r.height / 2); };
      bar.append(seg, this.pickers, el("span", { class: "sep" }), el("span", { class: "zoom-group" }, [
        el("button", { type: "button", title: "zoom out", text: "\u2212", onclick: () => zoomBy(1 / 1.5) }),
        this.zoomLabel,
        el("button", { type: "button", title: "zoom in", text: "+", onclick: () => zoomBy(1.5) }),
        el("button", { type: "button", text: "Fit", onclick: () => this.fit() }),
        el("button", { type: "button", text: "1:1", title: "one image pixel per screen pixel", onclick: () => this.actual() })]));

      this.imgA = el("img", { alt: "", draggable: "false", class: "cmp-a" });
      this.imgB = el("img", { alt: "", draggable: "false", class: "cmp-b" });
      this.top = el("div", { class: "cmp-top" }, [this.imgB]);
      this.handle = el("span", { class: "cmp-handle", text: "\u2194" });
      this.divider = el("div", { class: "cmp-divider", role: "slider", "aria-label": "comparison divider", tabindex: "0" }, [this.handle]);
      this.tagL = el("span", { class: "cmp-tag l" });
      this.tagR = el("span", { class: "cmp-tag r" });
      this.stage = el("div", { class: "cmp-stage" }, [this.imgA, this.top, this.divider, this.tagL, this.tagR]);
      this.grid = el("div", { class: "cmp-grid" });
      this.empty = el("div", { class: "cmp-empty", text: "no images to compare" });
      this.help = el("div", { class: "cmp-help" });
      this.root.classList.add("cmp");
      this.root.replaceChildren(bar, this.stage, this.grid, this.help);

      this.bindPanZoom(this.stage);
      this.bindDivider();
      for (const img of [this.imgA, this.imgB]) img.addEventListener("load", () => this.onImageLoad(img));
      window.addEventListener("resize", () => { if (this.fitted) this.fit(); else this.apply(); });
    }

    /* Replace the images; zoom and pan are kept when the size is unchanged (scrubbing alphas, next job). */
    setSources(sources, left, right) {
      this.sources = sources.slice();
      const n = this.sources.length;
      this.left = Math.min(left ?? 0, Math.max(n - 1, 0));
      this.right = Math.min(right ?? (n > 1 ? 1 : 0), Math.max(n - 1, 0));
      for (const sel of [this.leftSelect, this.rightSelect]) {
        sel.replaceChildren(...this.sources.map((s, i) => el("option", { value: String(i), text: s.label, title: s.label })));
      }
      this.gridPanes = null;
      this.render();
    }

    /* Change one source in place (the alpha slider): same size, so the view does not move. */
    replaceSource(index, source) {
      this.sources[index] = source;
      this.leftSelect.options[index].textContent = source.label;
      this.rightSelect.options[index].textContent = source.label;
      if (this.gridPanes && this.gridPanes[index]) {
        this.gridPanes[index].img.src = source.src;
        this.gridPanes[index].tag.textContent = source.label;
      }
      this.render(true);
    }

    choose(left, right) { this.left = left; this.right = right; this.render(); }

    /* Switch views keeping the zoom and the image point at the centre (the two views differ in size). */
    setMode(mode) {
      const r0 = this.viewRect();
      const cx = (r0.width / 2 - this.x) / this.zoom, cy = (r0.height / 2 - this.y) / this.zoom;
      this.mode = mode;
      this.render();
      if (this.fitted) { this.fit(); return; }
      const r = this.viewRect();
      this.x = r.width / 2 - cx * this.zoom;
      this.y = r.height / 2 - cy * this.zoom;
      this.apply();
    }

    render(keepGrid) {
      const n = this.sources.length;
      for (const [m, b] of Object.entries(this.modeButtons)) b.classList.toggle("on", m === this.mode);
      this.leftSelect.value = String(this.left);
      this.rightSelect.value = String(this.right);
      this.help.textContent = (this.mode === "slider"
        ? "Drag the divider (or focus it and use \u2190 \u2192) to compare the left and right pictures; "
        : "Every picture side by side; ") +
        "wheel or +/\u2212 to zoom, drag to pan, double-click for fit / 1:1. All views move together.";
      this.pickers.style.display = this.mode === "slider" ? "" : "none";
      this.stage.style.display = this.mode === "slider" ? "" : "none";
      this.grid.style.display = this.mode === "grid" ? "" : "none";
      if (!n) {
        this.stage.replaceChildren(this.empty);
        return;
      }
      if (this.empty.parentNode === this.stage) this.stage.replaceChildren(this.imgA, this.top, this.divider, this.tagL, this.tagR);
      const a = this.sources[this.left], b = this.sources[this.right];
      if (this.imgA.getAttribute("src") !== a.src) this.imgA.src = a.src;
      if (this.imgB.getAttribute("src") !== b.src) this.imgB.src = b.src;
      this.imgA.classList.toggle("nearest", !!a.nearest);
      this.imgB.classList.toggle("nearest", !!b.nearest);
      this.tagL.textContent = a.label;
      this.tagR.textContent = b.label;
      this.tagL.title = a.label;
      this.tagR.title = b.label;
      if (this.mode === "grid" && !(keepGrid && this.gridPanes)) this.buildGrid();
      this.apply();
    }

    buildGrid() {
      const n = this.sources.length;
      const cols = Math.min(n, n === 4 ? 2 : 3), rows = Math.ceil(n / cols);
      // The whole grid fits the viewport (its height is a share of it, at any browser zoom): rows share it.
      this.grid.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
      this.grid.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
      this.grid.dataset.rows = String(rows);
      this.gridPanes = this.sources.map((s) => {
        const img = el("img", { alt: s.label, draggable: "false", src: s.src, class: s.nearest ? "nearest" : "" });
        img.addEventListener("load", () => this.onImageLoad(img));
        const tag = el("span", { class: "cmp-tag", text: s.label, title: s.label });
        const pane = el("div", { class: "cmp-pane" }, [img, tag]);
        this.bindPanZoom(pane);
        return { pane, img, tag };
      });
      this.grid.replaceChildren(...this.gridPanes.map((p) => p.pane));
    }

    onImageLoad(img) {
      const w = img.naturalWidth, h = img.naturalHeight;
      if (!w || !h) return;
      const grow = !this.base || w * h > this.base.w * this.base.h;
      if (grow) {
        const changed = !this.base || this.base.w !== w || this.base.h !== h;
        this.base = { w, h };
        if (changed && this.fitted) { this.fit(); return; }
      }
      this.apply();
    }

    viewRect() {
      const target = this.mode === "slider" ? this.stage : (this.gridPanes && this.gridPanes[0] ? this.gridPanes[0].pane : this.stage);
      return target.getBoundingClientRect();
    }

    fit() {
      if (!this.base) return;
      const r = this.viewRect();
      if (!r.width || !r.height) return;
      this.zoom = Math.min(r.width / this.base.w, r.height / this.base.h);
      this.x = (r.width - this.base.w * this.zoom) / 2;
      this.y = (r.height - this.base.h * this.zoom) / 2;
      this.fitted = true;
      this.apply();
    }

    actual() {
      const r = this.viewRect();
      this.zoomAt(1, r.width / 2, r.height / 2);
    }

    zoomAt(zoom, cx, cy) {
      zoom = Math.max(0.05, Math.min(zoom, 64));
      this.x = cx - (cx - this.x) * (zoom / this.zoom);
      this.y = cy - (cy - this.y) * (zoom / this.zoom);
      this.zoom = zoom;
      this.fitted = false;
      this.apply();
    }

    apply() {
      const b = this.base;
      const imgs = [this.imgA, this.imgB, ...(this.gridPanes || []).map((p) => p.img)];
      for (const img of imgs) {
        if (b) { img.style.width = b.w + "px"; img.style.height = b.h + "px"; }
        img.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.zoom})`;
      }
      const pixelated = this.zoom >= 2;
      this.stage.classList.toggle("pixelated", pixelated);
      for (const p of this.gridPanes || []) p.pane.classList.toggle("pixelated", pixelated);
      this.zoomLabel.textContent = this.fitted ? "fit" : Math.round(this.zoom * 100) + "%";
      const pct = (this.split * 100).toFixed(2) + "%";
      this.top.style.clipPath = `inset(0 0 0 ${pct})`;
      this.divider.style.left = pct;
      this.divider.setAttribute("aria-valuenow", String(Math.round(this.split * 100)));
      this.stage.dataset.split = this.split.toFixed(4);
      this.stage.dataset.zoom = this.zoom.toFixed(4);
    }

    bindPanZoom(area) {
      let drag = null;
      area.addEventListener("wheel", (e) => {
        e.preventDefault();
        const r = area.getBoundingClientRect();
        this.zoomAt(this.zoom * Math.pow(1.0015, -e.deltaY), e.clientX - r.left, e.clientY - r.top);
      }, { passive: false });
      area.addEventListener("pointerdown", (e) => {
        if (e.button !== 0 || e.target.closest(".cmp-divider")) return;
        drag = { id: e.pointerId, x: e.clientX, y: e.clientY, ox: this.x, oy: this.y };
        area.setPointerCapture(e.pointerId);
        area.classList.add("dragging");
      });
      area.addEventListener("pointermove", (e) => {
        if (!drag || e.pointerId !== drag.id) return;
        this.x = drag.ox + e.clientX - drag.x;
        this.y = drag.oy + e.clientY - drag.y;
        this.fitted = false;
        this.apply();
      });
      const end = (e) => { if (drag && e.pointerId === drag.id) { drag = null; area.classList.remove("dragging"); } };
      area.addEventListener("pointerup", end);
      area.addEventListener("pointercancel", end);
      area.addEventListener("dblclick", (e) => {
        if (e.target.closest(".cmp-divider")) return;
        if (this.fitted) { const r = area.getBoundingClientRect(); this.zoomAt(Math.max(1, this.zoom * 2), e.clientX - r.left, e.clientY - r.top); }
        else this.fit();
      });
    }

    bindDivider() {
      let active = null;
      const move = (clientX) => {
        const r = this.stage.getBoundingClientRect();
        this.split = Math.max(0, Math.min(1, (clientX - r.left) / r.width));
        this.apply();
      };
      this.divider.addEventListener("pointerdown", (e) => {
        active = e.pointerId;
        this.divider.setPointerCapture(e.pointerId);
        e.preventDefault();
        e.stopPropagation();
      });
      this.divider.addEventListener("pointermove", (e) => { if (e.pointerId === active) move(e.clientX); });
      const end = (e) => { if (e.pointerId === active) active = null; };
      this.divider.addEventListener("pointerup", end);
      this.divider.addEventListener("pointercancel", end);
      this.divider.addEventListener("keydown", (e) => {
        const step = e.shiftKey ? 0.1 : 0.02;
        if (e.key === "ArrowLeft") this.split = Math.max(0, this.split - step);
        else if (e.key === "ArrowRight") this.split = Math.min(1, this.split + step);
        else return;
        e.preventDefault();
        this.apply();
      });
    }
  }

  window.CompareView = CompareView;
  window.el = el;
})();

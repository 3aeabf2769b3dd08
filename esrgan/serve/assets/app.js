/* esrgan serve page: files or a folder, model(s), output settings, the job (polled), each file's results as it
 * finishes, the comparison viewer, downloads. The job being watched is remembered (localStorage), so a reload
 * reconnects to it; other jobs of the server are listed and can be cancelled. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const el = window.el;
  const STORE = "esrgan-serve-job";
  const TERMINAL = ["done", "error", "cancelled"];
  let info = null;
  let files = [];          // {file, url, size: [w, h] | null}
  let source = "upload";   // or "folder"
  let mode = "single";
  let scale = "";
  let lastJob = null;      // last finished job with outputs (a blend is rerun from it when alpha moves)
  let current = null;      // id of the job being watched
  let lastStatus = null;
  let selected = 0;        // file shown in the viewer
  let timer = null;
  let scrolled = false;    // a phone's page scrolled to the results once per job
  let rerun = false;       // alpha moved while a blend ran: rerun when it ends
  const models = new Map();  // id -> model entry of /api/info
  const abouts = new Map();  // id -> /api/model answer
  const viewer = new window.CompareView($("viewer"), { sources: [] });

  // ------------------------------------------------------------------ helpers
  function mb(n) { return n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " kB"; }
  function clock(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return "";
    s = Math.max(0, Math.round(s));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  /* One human line, and the whole story folded beneath it. */
  function problem(line, detail, kind) {
    const box = el("div", { class: kind || "error" }, [el("div", { class: "line", text: line })]);
    if (detail && detail !== line) box.appendChild(el("details", { class: "detail" }, [el("summary", { text: "details" }), el("pre", { text: detail })]));
    return box;
  }
  function message(line, detail, kind) { $("messages").appendChild(problem(line, detail, kind)); }
  function clearMessages() { $("messages").replaceChildren(); }

  async function api(path, opts) {
    let res;
    try { res = await fetch(path, opts); } catch (err) { throw new Error("The server does not answer: is esrgan serve still running? (" + err.message + ")"); }
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const e = new Error((body && body.error) || `HTTP ${res.status}`);
      e.body = body;
      e.status = res.status;
      throw e;
    }
    return body;
  }

  // ------------------------------------------------------------------ settings
  function modelOption(m, sel) {
    const extra = m.available ? (m.kind === "zoo" && m.note ? ` \u2014 ${m.note}` : "") : ` \u2014 ${m.why}`;
    const opt = el("option", { value: m.id, text: m.label + extra, title: m.description ? `${m.id}: ${m.description}` : m.id });
    if (!m.available) opt.disabled = true;
    return opt;
  }

  function fillModels(sel, filter) {
    const keep = sel.value;
    sel.replaceChildren();
    const groups = { file: "Checkpoints", zoo: "Model zoo" };
    for (const kind of ["file", "zoo"]) {
      const opts = info.models.filter((m) => m.kind === kind && (!filter || filter(m)));
      if (opts.length) sel.appendChild(el("optgroup", { label: groups[kind] }, opts.map((m) => modelOption(m, sel))));
    }
    if ([...sel.options].some((o) => o.value === keep && !o.disabled)) sel.value = keep;
    else {
      const first = [...sel.options].find((o) => !o.disabled);
      if (first) sel.value = first.value;
    }
  }

  async function about(id) {
    if (!id) return null;
    if (!abouts.has(id)) abouts.set(id, api("/api/model?id=" + encodeURIComponent(id)).catch((err) => ({ error: err.message })));
    return abouts.get(id);
  }

  async function describe(which) {
    const sel = which === "a" ? $("model") : $("model-b");
    const box = $(which === "a" ? "model-a-about" : "model-b-about");
    const m = models.get(sel.value);
    if (!m) { box.textContent = ""; return; }
    box.replaceChildren(el("span", { text: m.description || "" }));
    const a = await about(sel.value);
    if (sel.value !== m.id || !a) return;
    if (which === "a") $("scale").querySelector("[data-scale='']").textContent = a.scale ? `model's (${a.scale}\u00d7)` : "model's";
    if (a.error || !a.loads) { box.replaceChildren(el("span", { class: "bad", text: a.error || a.network })); return; }
    box.replaceChildren(el("strong", { text: a.network }), document.createTextNode(
      [m.description, a.speed].filter(Boolean).map((t) => " \u00b7 " + t).join("")));
  }

  /* The second model: for a blend, only models of the same network (and zoo models of its kind not yet
   * downloaded, marked); for A vs B, any model that can run now. */
  async function fillSecond() {
    const a = $("model").value;
    if (mode === "blend") {
      const ans = await about(a);
      const ok = (ans && ans.compatible) || {};
      fillModels($("model-b"), (m) => m.id !== a && ok[m.id]);
      for (const o of $("model-b").options) if (ok[o.value] === "unknown") o.textContent = o.textContent.replace(/ \u2014 .*$/, "") + " \u2014 checked once downloaded";
      if (!$("model-b").options.length) {
        $("model-b").appendChild(el("option", { value: "", text: "no other model of this network", disabled: "" }));
      }
    } else {
      fillModels($("model-b"), (m) => m.id !== a);
    }
    $("end-a").textContent = "0 = " + (models.get(a) ? models.get(a).label : "first model");
    const b = models.get($("model-b").value);
    $("end-b").textContent = "1 = " + (b ? b.label : "second model");
    describe("b");
  }

  async function loadInfo() {
    info = await api("/api/info");
    for (const m of info.models) models.set(m.id, m);
    const nFiles = info.models.filter((m) => m.kind === "file").length;
    $("device").textContent = `device: ${info.device} \u00b7 ${nFiles} checkpoint(s) in the allowed folders, and the model zoo` +
      (info.offline ? " (offline: only downloaded zoo models run)" : "");
    $("device").title = "allowed model folders: " + info.allowed_folders.join(", ");
    if (info.exposed) {
      $("exposed").hidden = false;
      $("exposed").textContent = `This server listens on ${info.host}, not only on this machine: anyone who can reach it can use it (there is no login).`;
    }
    $("limits").textContent = `up to ${info.limits.max_files} files of ${info.limits.max_upload_mb} MB and ${(info.limits.max_pixels / 1e6).toFixed(1)} MP each`;
    fillModels($("model"));
    if (info.defaults.model && models.has(info.defaults.model)) $("model").value = info.defaults.model;
    $("tile").value = info.defaults.tile;
    $("precision").replaceChildren(...info.precisions.map((p) => el("option", { value: p, text: p })));
    $("color-fix").replaceChildren(...info.color_fixes.map((c) => el("option", {
      value: c, text: c + (c === info.defaults.color_fix ? " (default)" : "") })));
    $("color-fix").value = info.defaults.color_fix;
    $("quality").value = info.defaults.quality;  // the server's default, stated once (the HTML's is a placeholder)
    const batch = info.batch;
    $("folder-why").textContent = batch.enabled ? "" : batch.why;
    $("folder-why").className = batch.enabled ? "small" : "small notice";
    $("folder-fields").hidden = !batch.enabled;
    $("batch-roots").textContent = batch.folders.join(", ");
    if (batch.enabled && !$("batch-input").value) $("batch-input").placeholder = batch.folders[0] + "/photos";
    if (batch.enabled && !$("batch-output").value) $("batch-output").placeholder = batch.folders[0] + "/upscaled";
    if (!info.defaults.model) {  // nothing preferred with --model: start on a checkpoint that loads (a few tried)
      const files = info.models.filter((m) => m.kind === "file" && m.available).slice(0, 4);
      for (const m of files) {
        const a = await about(m.id);
        if (touched) break;  // the user chose meanwhile: theirs stands
        if (a && a.loads) { $("model").value = m.id; break; }
      }
    }
    describe("a");
    await fillSecond();
  }

  function setSegment(group, attr, value) {
    for (const b of document.querySelectorAll(`${group} [${attr}]`)) {
      const on = b.getAttribute(attr) === value;
      b.classList.toggle("on", on);
      b.setAttribute("aria-checked", String(on));
    }
  }

  function setMode(m) {
    mode = m;
    setSegment(".side", "data-mode", m);
    $("second").hidden = m === "single";
    $("blend").hidden = m !== "blend";
    $("model-a-label").textContent = m === "single" ? "model" : (m === "compare" ? "model A" : "first model (alpha 0)");
    $("model-b-label").textContent = m === "compare" ? "model B" : "second model (alpha 1)";
    $("run").textContent = m === "blend" ? "Upscale with the blend" : (m === "compare" ? "Upscale with A and B" : "Upscale");
    if (m !== "single" && info) fillSecond();
  }
  for (const b of document.querySelectorAll(".side [data-mode]")) b.addEventListener("click", () => setMode(b.dataset.mode));
  for (const b of document.querySelectorAll("[data-scale]")) b.addEventListener("click", () => { scale = b.dataset.scale; setSegment("#scale", "data-scale", scale); });
  $("format").addEventListener("change", () => { $("quality-field").hidden = !["jpg", "webp"].includes($("format").value); });
  let touched = false;  // the user picked a model (the page's own choice of a default must not override it)
  $("model").addEventListener("change", () => { touched = true; describe("a"); if (mode !== "single") fillSecond(); lastJob = null; });
  $("model-b").addEventListener("change", () => { fillSecond(); lastJob = null; });
  $("alpha").addEventListener("input", () => { $("alpha-value").textContent = (+$("alpha").value).toFixed(2); });
  $("alpha").addEventListener("change", () => {
    // Live blending: the same files again at the new alpha (the viewer keeps its zoom; the end points are reused).
    if (mode !== "blend" || !$("live").checked || !lastJob) return;
    if (current) rerun = true; else run(lastJob);
  });

  function setSource(s) {
    source = s;
    for (const [id, on] of [["src-upload", s === "upload"], ["src-folder", s === "folder"]]) {
      $(id).classList.toggle("on", on);
      $(id).setAttribute("aria-selected", String(on));
    }
    $("upload-panel").hidden = s !== "upload";
    $("folder-panel").hidden = s !== "folder";
  }
  $("src-upload").addEventListener("click", () => setSource("upload"));
  $("src-folder").addEventListener("click", () => setSource("folder"));

  // ------------------------------------------------------------------ files
  function addFiles(list) {
    for (const f of list) {
      if (files.some((x) => x.file.name === f.name && x.file.size === f.size && x.file.lastModified === f.lastModified)) continue;
      const entry = { file: f, url: f.type.startsWith("image/") ? URL.createObjectURL(f) : null, size: null };
      files.push(entry);
      if (entry.url) {
        const probe = new Image();
        probe.onload = () => { entry.size = [probe.naturalWidth, probe.naturalHeight]; showFiles(); };
        probe.src = entry.url;
      }
    }
    lastJob = null;
    showFiles();
  }
  function removeFile(entry) {
    if (entry.url) URL.revokeObjectURL(entry.url);
    files = files.filter((x) => x !== entry);
    lastJob = null;
    showFiles();
  }
  function showFiles() {
    $("chosen").replaceChildren(...files.map((x) => el("li", {}, [
      x.url ? el("img", { class: "thumb", src: x.url, alt: "" }) : el("span", { class: "thumb none", text: x.file.type.startsWith("video/") ? "\u25b6" : "?" }),
      el("span", { class: "name", text: x.file.name, title: x.file.name }),
      el("span", { class: "meta", text: (x.size ? `${x.size[0]}\u00d7${x.size[1]} \u00b7 ` : "") + mb(x.file.size) }),
      el("button", { type: "button", class: "remove", "aria-label": "remove " + x.file.name, title: "remove", text: "\u00d7", onclick: () => removeFile(x) }),
    ])));
    $("chosen-head").hidden = !files.length;
    const total = files.reduce((n, x) => n + x.file.size, 0);
    $("chosen-count").textContent = `${files.length} file(s), ${mb(total)}`;
  }
  $("files").addEventListener("change", () => { addFiles([...$("files").files]); $("files").value = ""; });
  $("clear-files").addEventListener("click", () => { for (const x of files) if (x.url) URL.revokeObjectURL(x.url); files = []; lastJob = null; showFiles(); });
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles([...e.dataTransfer.files]); });

  // ------------------------------------------------------------------ jobs
  function settingsForm(form) {
    form.append("model", $("model").value);
    form.append("mode", mode);
    if (mode !== "single") form.append("model_b", $("model-b").value);
    if (mode === "blend") { form.append("alpha", $("alpha").value); form.append("endpoints", $("endpoints").checked ? "1" : "0"); }
    form.append("outscale", scale);
    form.append("format", $("format").value);
    form.append("quality", $("quality").value);
    form.append("tile", $("tile").value);
    form.append("precision", $("precision").value);
    form.append("color_fix", $("color-fix").value);
  }

  /* A new job: what was on screen belongs to the last one and goes at once. */
  function resetView(text) {
    clearMessages();
    $("results").replaceChildren();
    $("zip").hidden = true;
    $("zip").removeAttribute("href");
    $("viewer").hidden = true;
    $("player").hidden = true;
    $("player").removeAttribute("src");
    $("placeholder").hidden = false;
    $("batch-note").hidden = true;
    $("progress").hidden = true;
    $("progress").className = "progress";
    $("status").textContent = text;
    $("status").dataset.state = "starting";
    selected = 0;
    scrolled = false;
    lastStatus = null;
  }

  async function run(fromJob) {
    if (current) return;
    if (!fromJob && source === "upload" && !files.length) { resetView(""); message("Choose or drop one or more images first."); return; }
    if (!fromJob && source === "folder" && !(info && info.batch.enabled)) { resetView(""); message(info ? info.batch.why : "folder batches are off"); return; }
    const keepView = !!fromJob;  // a live blend rerun: the viewer keeps its pictures until the new ones come
    if (!keepView) resetView(source === "folder" && !fromJob ? "Listing the folder\u2026" : "Uploading\u2026");
    else { clearMessages(); $("status").textContent = "Blending again at alpha " + (+$("alpha").value).toFixed(2) + "\u2026"; }
    const form = new FormData();
    let url = "/api/jobs";
    if (fromJob) form.append("from_job", fromJob);
    else if (source === "folder") { url = "/api/batch"; form.append("input", $("batch-input").value); form.append("output", $("batch-output").value); }
    else for (const x of files) form.append("files", x.file, x.file.name);
    settingsForm(form);
    $("run").disabled = true;
    let answer;
    try {
      answer = await api(url, { method: "POST", body: form });
    } catch (err) {
      $("status").textContent = "Not started.";
      $("status").dataset.state = "refused";
      const rejected = (err.body && err.body.rejected) || [];
      if (rejected.length) for (const r of rejected) message(r.error);
      else message(err.message, err.body && err.body.detail);
      $("run").disabled = false;
      return;
    }
    for (const r of answer.rejected || []) message(r.error, null, "warning");
    watch(answer.job, answer.status);
  }
  $("run").addEventListener("click", () => run(null));

  function watch(id, st) {
    current = id;
    try { localStorage.setItem(STORE, id); } catch (_) { /* private mode */ }
    $("cancel").disabled = false;
    $("cancel").textContent = "Cancel";
    $("run").disabled = true;
    if (st) show(st);
    poll();
  }

  async function poll() {
    clearTimeout(timer);
    if (!current) return;
    let st;
    try { st = await api(`/api/jobs/${current}`); } catch (err) {
      message(err.message, err.body && err.body.detail);
      if (err.status === 404) forget();
      finish(null);
      return;
    }
    if (st.id !== current) return;
    show(st);
    if (TERMINAL.includes(st.state)) finish(st); else timer = setTimeout(poll, 250);
  }

  function forget() { try { localStorage.removeItem(STORE); } catch (_) { /* private mode */ } }

  function finish(st) {
    for (const v of (st && st.request) ? [st.request.model, st.request.model_b] : []) abouts.delete(v);
    if (st) { describe("a"); if (mode !== "single") describe("b"); }
    for (const n of $("messages").querySelectorAll(".reconnected")) n.remove();  // that was about a job now over
    if (st && st.results.some((r) => r.outputs.length)) lastJob = st.id;
    current = null;
    $("run").disabled = false;
    $("cancel").disabled = true;
    $("cancel").textContent = "Cancel";
    refreshOthers();
    if (rerun && lastJob && mode === "blend" && !(st && st.batch)) { rerun = false; run(lastJob); }
    rerun = false;
  }

  async function cancel(id) {
    try { return await api(`/api/jobs/${id}/cancel`, { method: "POST" }); } catch (err) { message(err.message); return null; }
  }
  $("cancel").addEventListener("click", async () => {
    if (!current) return;
    // Said at once; the server stops within one layer of the network and keeps what finished.
    $("cancel").disabled = true;
    $("cancel").textContent = "Cancelling\u2026";
    $("status").textContent = "Cancelling\u2026";
    $("status").dataset.state = "cancelling";
    $("progress").classList.add("cancelling");
    const st = await cancel(current);
    if (st) show(st);
  });

  function statusLine(st) {
    const done = (st.counts.done || 0);
    if (st.state === "queued") return `Queued: position ${st.position} (${st.position - 1} job(s) ahead on this device)`;
    if (st.state === "running") {
      if (st.cancelling) return "Cancelling\u2026";
      if (st.phase && st.phase.startsWith("loading")) return `Loading the model (${st.phase.slice(8)})\u2026`;
      const v = st.variants.length > 1 ? ` \u00b7 ${st.variants[st.variant - 1].label}` : "";
      const steps = st.steps_total ? ` \u00b7 ${st.unit} ${st.steps_done}/${st.steps_total}` : "";
      const eta = st.eta !== null ? ` \u00b7 about ${clock(st.eta)} left` : "";
      return `File ${st.image} of ${st.images}${v}${steps}${eta} \u00b7 ${done} done`;
    }
    if (st.state === "done") return `Done: ${st.message} in ${st.elapsed.toFixed(1)} s \u00b7 ${st.settings}`;
    if (st.state === "cancelled") return (st.message || "Cancelled.") + (st.cancelled_in !== null ? ` Stopped ${st.cancelled_in.toFixed(2)} s after Cancel.` : "");
    return "Failed.";
  }

  function show(st) {
    lastStatus = st;
    const pct = Math.round(st.fraction * 100);
    const bar = $("progress");
    const failed = st.state === "error";
    bar.hidden = failed || st.state === "queued";  // a failure is said in words: no empty red bar
    $("bar").style.width = pct + "%";
    $("percent").textContent = st.state === "cancelled" ? `stopped at ${pct}%` : pct + "%";
    bar.setAttribute("aria-valuenow", String(pct));
    bar.classList.toggle("done", st.state === "done");
    bar.classList.toggle("cancelling", !!st.cancelling || st.state === "cancelled");
    $("status").textContent = statusLine(st);
    $("status").dataset.state = st.cancelling ? "cancelling" : st.state;
    if (st.cancelling) { $("cancel").disabled = true; $("cancel").textContent = "Cancelling\u2026"; }
    if (failed && !$("messages").querySelector(".job-error")) {
      const box = problem(st.message, st.detail);
      box.classList.add("job-error");
      $("messages").appendChild(box);
    }
    if (st.batch) { $("batch-note").hidden = false; $("batch-note").textContent = "Outputs go to " + st.batch.output + " (files there are never replaced)."; }
    showResults(st);
  }

  const STATE_WORDS = { waiting: "waiting", running: "running\u2026", done: "done", error: "failed", cancelled: "cancelled", skipped: "skipped", not_run: "not run" };

  function resultRow(st, r) {
    const shown = r.index === selected && r.outputs.length > 0;
    const badge = el("span", { class: `badge ${r.state}`, text: STATE_WORDS[r.state] || r.state });
    const name = el("span", { class: "name", text: r.name, title: r.name });
    const head = el("div", { class: "res-head" }, [name, badge]);
    const body = [head];
    if (r.error) body.push(problem(r.error, r.detail));
    if (r.note) body.push(el("div", { class: "muted small wrap", text: r.note }));
    for (const o of r.outputs) {
      body.push(el("div", { class: "out" }, [
        el("span", { class: "out-label", text: o.label, title: o.label }),
        el("span", { class: "meta", text: `${o.size[0]}\u00d7${o.size[1]} \u00b7 ${o.plan} \u00b7 colour fix ${o.color_fix}${o.seconds ? ` \u00b7 ${o.seconds.toFixed(1)} s` : ""}` }),
        el("a", { class: "button download", href: o.url + "?download=1", download: o.name, text: "Download", title: o.name, "aria-label": "download " + o.name }),
      ]));
    }
    const li = el("li", { class: `result ${r.state}` + (shown ? " on" : ""), "data-index": String(r.index) }, body);
    if (r.outputs.length) {
      li.tabIndex = 0;
      li.setAttribute("role", "button");
      li.setAttribute("aria-label", `show ${r.name} in the viewer`);
      li.setAttribute("aria-pressed", String(shown));
      const pick = () => { selected = r.index; showResults(st); };
      li.addEventListener("click", (e) => { if (!e.target.closest("a, button, summary")) pick(); });
      li.addEventListener("keydown", (e) => { if ((e.key === "Enter" || e.key === " ") && e.target === li) { e.preventDefault(); pick(); } });
    }
    return li;
  }

  function showResults(st) {
    const list = $("results");
    const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest("#results li") : null;
    const focusIndex = focused ? focused.dataset.index : null;
    list.replaceChildren(...st.results.map((r) => resultRow(st, r)));
    if (focusIndex !== null) { const again = list.querySelector(`li[data-index="${focusIndex}"]`); if (again) again.focus(); }
    const zip = $("zip");
    zip.hidden = !st.zip;
    if (st.zip) { zip.href = st.zip; zip.setAttribute("download", st.zip_name); zip.title = st.zip_name; }
    const ok = st.results.filter((r) => r.outputs.length);
    $("placeholder").hidden = ok.length > 0 || st.results.length > 0;
    if (!ok.length) { $("viewer").hidden = true; return; }
    const r = st.results[selected] && st.results[selected].outputs.length ? st.results[selected] : ok[0];
    selected = r.index;
    [...list.children].forEach((c) => { c.classList.toggle("on", c.dataset.index === String(r.index)); if (c.hasAttribute("aria-pressed")) c.setAttribute("aria-pressed", String(c.dataset.index === String(r.index))); });
    showInViewer(st, r);
    if (!scrolled && window.innerWidth < 900) {  // on a phone the results are below the settings: go there once
      scrolled = true;
      $("results-card").scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  function showInViewer(st, r) {
    const v = `?job=${st.id}`;  // a rerun (live blend) reuses URLs for new pictures
    const player = $("player");
    if (r.kind === "video") {
      $("viewer").hidden = true;
      player.hidden = false;
      const src = r.outputs[0].url + v;
      if (player.getAttribute("src") !== src) player.src = src;
      return;
    }
    player.hidden = true;
    player.removeAttribute("src");
    $("viewer").hidden = false;
    const sources = [];
    if (r.input) sources.push({ label: "input (nearest)", src: r.input + v, nearest: true });
    if (r.bicubic) sources.push({ label: "bicubic", src: r.bicubic + v });
    for (const o of r.outputs) sources.push({ label: o.label, src: o.url + v });
    // Default: bicubic | the first model; A | B when comparing; the first model alone | the blend when shown.
    const at = (key) => { const k = r.outputs.findIndex((o) => o.key === key); return k < 0 ? -1 : k + (r.input ? 1 : 0) + (r.bicubic ? 1 : 0); };
    let left = r.bicubic ? (r.input ? 1 : 0) : 0, right = at(r.outputs[0].key);
    if (at("a") >= 0 && at("b") >= 0 && at("blend") < 0) { left = at("a"); right = at("b"); }
    else if (at("blend") >= 0 && at("a") >= 0) { left = at("a"); right = at("blend"); }
    const same = viewer.sources.length === sources.length && viewer.sources.every((s, i) => s.label === sources[i].label);
    viewer.setSources(sources, same ? viewer.left : left, same ? viewer.right : right);
  }

  // ------------------------------------------------------------------ other jobs (a reload, another tab)
  async function refreshOthers() {
    let list;
    try { list = (await api("/api/jobs")).jobs; } catch (_) { return; }
    const others = list.filter((j) => j.id !== current && !TERMINAL.includes(j.state));
    $("others").hidden = !others.length;
    $("others-list").replaceChildren(...others.map((j) => el("li", {}, [
      el("span", { class: "grow name", text: `${j.names.join(", ")}${j.images > j.names.length ? ` and ${j.images - j.names.length} more` : ""}`, title: j.settings }),
      el("span", { class: "muted small", text: j.cancelling ? "cancelling\u2026" : (j.state === "queued" ? `queued (${j.position})` : `${Math.round(j.fraction * 100)}%`) }),
      el("button", { type: "button", class: "small", text: "Show", onclick: () => { if (!current) { resetView("Reconnecting\u2026"); watch(j.id); } } }),
      el("button", { type: "button", class: "small", text: "Cancel", "aria-label": "cancel the job of " + j.names.join(", "), onclick: async () => { await cancel(j.id); refreshOthers(); } }),
    ])));
    if (others.length) setTimeout(refreshOthers, 2000);
  }

  /* The settings a job ran with, back in the form (a reloaded page shows what its job does). */
  async function restore(req) {
    if (!req) return;
    setMode(req.mode);
    if (models.has(req.model)) $("model").value = req.model;
    if (req.mode !== "single") { await fillSecond(); if (req.model_b) $("model-b").value = req.model_b; }
    if (req.alpha !== null) { $("alpha").value = req.alpha; $("alpha-value").textContent = (+req.alpha).toFixed(2); }
    $("endpoints").checked = !!req.endpoints;
    scale = req.outscale === null ? "" : String(req.outscale);
    setSegment("#scale", "data-scale", scale);
    $("format").value = req.format;
    $("quality").value = req.quality;
    $("quality-field").hidden = !["jpg", "webp"].includes(req.format);
    $("tile").value = req.tile;
    $("precision").value = req.precision;
    $("color-fix").value = req.color_fix;
    describe("a");
    if (req.mode !== "single") fillSecond();
  }

  async function reconnect() {
    let id = null;
    try { id = localStorage.getItem(STORE); } catch (_) { /* private mode */ }
    if (!id) { refreshOthers(); return; }
    let st;
    try { st = await api(`/api/jobs/${encodeURIComponent(id)}`); } catch (_) { forget(); refreshOthers(); return; }
    resetView("Reconnected to your last job.");
    if (TERMINAL.includes(st.state)) { show(st); finish(st); return; }
    restore(st.request);
    message(`Reconnected to your job (${st.images} file(s), ${st.settings}): it went on while the page was away.`, null, "notice reconnected");
    watch(st.id, st);
    refreshOthers();
  }

  setMode("single");
  setSource("upload");
  loadInfo().catch((err) => message("Could not load the model list: " + err.message)).then(reconnect)
    .finally(() => { document.body.dataset.ready = "1"; });
})();

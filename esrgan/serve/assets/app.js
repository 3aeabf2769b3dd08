/* esrgan serve page: upload, settings, job progress (polling), results, comparison, downloads. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const el = window.el;
  let files = [];          // File objects chosen or dropped
  let mode = "single";
  let lastJob = null;      // id of the last job that ran (reused by live interpolation)
  let current = null;      // id of the job being watched
  let selected = 0;        // result shown in the viewer
  let timer = null;
  const viewer = new window.CompareView($("viewer"), { sources: [] });
  $("viewer").querySelector(".cmp-empty").textContent = "Results appear here: drag the divider to compare bicubic with the network.";

  function message(text, kind) {
    $("messages").appendChild(el("div", { class: kind || "error", text }));
  }
  function clearMessages() { $("messages").replaceChildren(); }
  function mb(n) { return n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " kB"; }
  function clock(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return "";
    s = Math.max(0, Math.round(s));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  async function api(path, opts) {
    let res;
    try { res = await fetch(path, opts); } catch (err) { throw new Error("the server does not answer (" + err.message + ")"); }
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const e = new Error((body && body.error) || `HTTP ${res.status}`);
      e.body = body;
      throw e;
    }
    return body;
  }

  // ------------------------------------------------------------------ settings
  async function loadInfo() {
    const info = await api("/api/info");
    const files = info.models.filter((m) => m.kind === "file").length;
    $("device").textContent = `device: ${info.device} \u00b7 ${files} checkpoint(s) in the allowed folders, and the model zoo`;
    $("device").title = "allowed model folders: " + info.allowed_folders.join(", ");
    if (info.exposed) {
      const b = $("exposed");
      b.hidden = false;
      b.textContent = `This server listens on ${info.host}, not only on this machine: anyone who can reach it can use it (there is no login).`;
    }
    $("limits").textContent = `up to ${info.limits.max_upload_mb} MB and ${(info.limits.max_pixels / 1e6).toFixed(1)} MP per image`;
    const groups = { file: "Checkpoints", zoo: "Model zoo" };
    for (const sel of [$("model"), $("model-b")]) {
      sel.replaceChildren();
      for (const kind of ["file", "zoo"]) {
        const opts = info.models.filter((m) => m.kind === kind);
        if (!opts.length) continue;
        sel.appendChild(el("optgroup", { label: groups[kind] }, opts.map((m) => el("option", {
          value: m.id, text: m.label + (m.note && kind === "zoo" ? ` (${m.note})` : ""), title: m.id }))));
      }
    }
    if (info.defaults.model) $("model").value = info.defaults.model;
    const second = info.models.find((m) => m.id !== $("model").value && m.kind === "file");
    if (second) $("model-b").value = second.id;
    $("tile").value = info.defaults.tile;
    $("precision").replaceChildren(...info.precisions.map((p) => el("option", { value: p, text: p })));
  }

  function setMode(m) {
    mode = m;
    $("mode-single").classList.toggle("on", m === "single");
    $("mode-interp").classList.toggle("on", m === "interp");
    $("interp").hidden = m !== "interp";
    $("run").textContent = m === "interp" ? "Upscale with the blend" : "Upscale";
  }
  $("mode-single").addEventListener("click", () => setMode("single"));
  $("mode-interp").addEventListener("click", () => setMode("interp"));
  $("alpha").addEventListener("input", () => { $("alpha-value").textContent = (+$("alpha").value).toFixed(2); });
  let rerun = false;  // an alpha change while a job runs: rerun once it is over
  $("alpha").addEventListener("change", () => {
    // Live interpolation: the same images again, with the new blend (the viewer keeps its zoom).
    if (mode !== "interp" || !$("live").checked || !lastJob) return;
    if (running()) rerun = true; else run(lastJob);
  });

  // ------------------------------------------------------------------ files
  function showFiles() {
    $("chosen").replaceChildren(...files.map((f) => el("li", {}, [el("span", { text: f.name }), el("span", { text: mb(f.size) })])));
    lastJob = null;
  }
  $("files").addEventListener("change", () => { files = [...$("files").files]; showFiles(); });
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); files = [...e.dataTransfer.files]; showFiles(); });

  // ------------------------------------------------------------------ jobs
  function running() { return current !== null; }

  async function run(fromJob) {
    clearMessages();
    if (!fromJob && !files.length) { message("Choose or drop one or more images first."); return; }
    const form = new FormData();
    if (fromJob) form.append("from_job", fromJob);
    else for (const f of files) form.append("files", f, f.name);
    form.append("model", $("model").value);
    if (mode === "interp") { form.append("model_b", $("model-b").value); form.append("alpha", $("alpha").value); }
    form.append("outscale", $("outscale").value);
    form.append("tile", $("tile").value);
    form.append("precision", $("precision").value);
    $("run").disabled = true;
    let answer;
    try {
      answer = await api("/api/jobs", { method: "POST", body: form });
    } catch (err) {
      for (const r of (err.body && err.body.rejected) || []) message(r.error);
      if (!(err.body && err.body.rejected && err.body.rejected.length)) message(err.message);
      $("run").disabled = false;
      return;
    }
    for (const r of answer.rejected || []) message(r.error);
    current = answer.job;
    $("cancel").disabled = false;
    show(answer.status);
    poll();
  }
  $("run").addEventListener("click", () => run(null));

  async function poll() {
    clearTimeout(timer);
    if (!current) return;
    let st;
    try { st = await api(`/api/jobs/${current}`); } catch (err) { message(err.message); finish(); return; }
    show(st);
    if (["done", "error", "cancelled"].includes(st.state)) finish(st); else timer = setTimeout(poll, 250);
  }

  function finish(st) {
    if (st && st.state !== "cancelled" && st.results.some((r) => r.output)) lastJob = st.id;
    current = null;
    $("run").disabled = false;
    $("cancel").disabled = true;
    if (rerun && lastJob && mode === "interp") { rerun = false; run(lastJob); }
    rerun = false;
  }

  $("cancel").addEventListener("click", async () => {
    if (!current) return;
    try { show(await api(`/api/jobs/${current}/cancel`, { method: "POST" })); } catch (err) { message(err.message); }
  });

  function show(st) {
    const pct = Math.round(st.fraction * 100);
    const bar = $("progress");
    $("bar").style.width = pct + "%";
    $("percent").textContent = pct + "%";
    bar.setAttribute("aria-valuenow", String(pct));
    bar.classList.toggle("done", st.state === "done");
    bar.classList.toggle("failed", st.state === "error");
    let text;
    if (st.state === "queued") text = `Queued: position ${st.position} (${st.position - 1} job(s) ahead on this device)`;
    else if (st.state === "running") {
      const steps = st.steps_total ? ` \u00b7 ${st.unit} ${st.steps_done}/${st.steps_total}` : " \u00b7 loading the model";
      const eta = st.eta !== null ? ` \u00b7 about ${clock(st.eta)} left` : "";
      text = `File ${st.image}/${st.images}${steps}${eta}`;
    } else if (st.state === "done") text = `Done: ${st.message} in ${st.elapsed.toFixed(1)} s \u00b7 ${st.settings}`;
    else if (st.state === "cancelled") text = "Cancelled.";
    else text = "Failed.";
    $("status").textContent = text;
    $("status").dataset.state = st.state;
    if (st.state === "error" && st.message && !$("messages").textContent.includes(st.message)) message(st.message);
    if (["done", "error", "cancelled"].includes(st.state)) showResults(st);
  }

  function showResults(st) {
    const box = $("results");
    box.replaceChildren(...st.results.map((r) => {
      if (r.error) return el("div", { class: "result failed" }, [el("span", { class: "name", text: r.error })]);
      if (!r.output) return el("div", { class: "result failed" }, [el("span", { class: "name", text: `${r.name}: not run` })]);
      const row = el("div", { class: "result" + (r.index === selected ? " on" : ""), "data-index": String(r.index) }, [
        el("span", { class: "name", text: r.output_name, title: r.name }),
        el("span", { class: "meta", text: r.size ? `${r.size[0]}\u00d7${r.size[1]}` : "" }),
        el("a", { class: "button download", href: r.output + "?download=1", download: r.output_name, text: "Download" }),
      ]);
      row.addEventListener("click", (e) => { if (!e.target.closest("a")) { selected = r.index; showResults(st); } });
      return row;
    }));
    const zip = $("zip");
    zip.hidden = !st.zip;
    if (st.zip) zip.href = st.zip;
    const ok = st.results.filter((r) => r.output);
    if (!ok.length) return;
    const r = st.results[selected] && st.results[selected].output ? st.results[selected] : ok[0];
    selected = r.index;
    [...box.children].forEach((c) => c.classList.toggle("on", c.dataset.index === String(r.index)));
    // Cache-busting query: a rerun (live interpolation) reuses the same URLs for new pictures.
    const v = `?job=${st.id}`;
    const player = $("player");
    $("viewer").hidden = r.kind === "video";
    player.hidden = r.kind !== "video";
    if (r.kind === "video") {
      if (player.getAttribute("src") !== r.output + v) player.src = r.output + v;
      return;
    }
    player.removeAttribute("src");
    const sources = [{ label: "bicubic", src: r.bicubic + v }, { label: st.settings, src: r.output + v }];
    viewer.setSources(sources, viewer.sources.length === 2 ? viewer.left : 0, viewer.sources.length === 2 ? viewer.right : 1);
  }

  loadInfo().catch((err) => message("Could not load the model list: " + err.message));
  setMode("single");
})();

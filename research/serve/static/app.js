// BookForAI's page: chat, knowledge base and fine-tune over the server's own HTTP API.
// Plain JavaScript, no build step and nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "bookforai.api_key";
let info = null;

// ---- talking to the server ------------------------------------------------------------
function headers(extra = {}) {
  const key = localStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function errorText(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const said = body.error ?? body.detail ?? text;
    const message = typeof said === "string" ? said : (said.message ?? JSON.stringify(said));
    return `${response.status}: ${message}`;
  } catch (e) {
    return `${response.status}: ${text || response.statusText}`;
  }
}

async function api(path, options = {}) {
  const init = { ...options, headers: headers(options.headers || {}) };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

// POST /api/chat streams one JSON object per line; calls onPiece(text) as they arrive and
// returns the final object (done: true), which carries "sources" for knowledge-base answers.
async function streamChat(body, onPiece, signal) {
  const response = await fetch("/api/chat", {
    method: "POST", signal, body: JSON.stringify({ ...body, stream: true }),
    headers: headers({ "Content-Type": "application/json" }),
  });
  if (!response.ok) throw new Error(await errorText(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", last = null;
  const handle = (line) => {
    if (!line.trim()) return;
    const obj = JSON.parse(line);
    if (obj.error) throw new Error(obj.error);
    if (obj.message && obj.message.content) onPiece(obj.message.content);
    if (obj.done) last = obj;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      handle(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 1);
    }
  }
  handle(buffer + decoder.decode());
  return last;
}

// ---- pages ------------------------------------------------------------------------------
function showPage() {
  const page = (location.hash || "#chat").slice(1);
  for (const section of document.querySelectorAll(".page")) {
    section.hidden = section.id !== `page-${page}`;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  if (page === "kb") refreshKb().catch(showError);
  if (page === "finetune") refreshJobs().catch(showError);
}

// ---- chat -----------------------------------------------------------------------------
const chat = { messages: [], controller: null };
const HISTORY = "bookforai.chat";  // the conversation survives a reload of the page

function saveHistory() {
  localStorage.setItem(HISTORY, JSON.stringify(chat.messages));
}

function restoreHistory() {
  try {
    const saved = JSON.parse(localStorage.getItem(HISTORY) || "[]");
    chat.messages = Array.isArray(saved) ? saved.filter((m) => m && typeof m.content === "string") : [];
  } catch (e) {
    chat.messages = [];
  }
  $("chat-log").replaceChildren();
  for (const m of chat.messages) addMessage(m.role === "user" ? "user" : "assistant", m.content);
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  div.append(who, body);
  $("chat-log").append(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return div;
}

function samplerOptions() {
  const options = {};
  for (const name of ["temperature", "top_k", "top_p", "min_p", "num_predict", "seed"]) {
    const raw = $(`s-${name}`).value.trim();
    if (raw === "") continue;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`${name}: expected a number, got ${raw}`);
    options[name] = value;
  }
  return options;
}

async function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || chat.controller) return;
  showError(null);
  let options;
  try { options = samplerOptions(); } catch (e) { showError(e); return; }
  $("chat-input").value = "";
  chat.messages.push({ role: "user", content: text });
  addMessage("user", text);
  const div = addMessage("assistant", "");
  div.classList.add("streaming");
  const out = div.querySelector(".text");
  const system = $("s-system").value.trim();
  const messages = system ? [{ role: "system", content: system }, ...chat.messages] : chat.messages;
  chat.controller = new AbortController();
  $("chat-send").disabled = true;
  $("chat-stop").disabled = false;
  let answer = "";
  try {
    const last = await streamChat({ model: $("chat-model").value || undefined, messages, options },
      (piece) => {
        answer += piece;
        out.textContent = answer;
        $("chat-log").scrollTop = $("chat-log").scrollHeight;
      }, chat.controller.signal);
    if (last && last.eval_count) div.title = `${last.eval_count} tokens`;
  } catch (e) {
    if (e.name !== "AbortError") showError(e);
  } finally {
    div.classList.remove("streaming");
    chat.messages.push({ role: "assistant", content: answer });
    saveHistory();
    chat.controller = null;
    $("chat-send").disabled = false;
    $("chat-stop").disabled = true;
  }
}

// The chat models of GET /api/tags (no knowledge bases, no embedder); the choice is kept.
const MODEL = "bookforai.model";

async function refreshModels(choose) {
  const tags = await api("/api/tags");
  const names = tags.models.filter((m) => m.details.family === "llama").map((m) => m.model);
  const wanted = choose || localStorage.getItem(MODEL);
  $("chat-model").replaceChildren(...names.map((n) => new Option(n, n)));
  $("chat-model").value = names.includes(wanted) ? wanted : info.model;
}

async function chatWithExport() {
  showError(null);
  try {
    await refreshModels(ft.exported);
    localStorage.setItem(MODEL, ft.exported);
    location.hash = "chat";
  } catch (e) { showError(e); }
}

// ---- knowledge base -------------------------------------------------------------------
const kb = { polling: null };

function currentKb() { return $("kb-select").value; }

async function refreshKbList(select) {
  info = await api("/ui/info");
  const box = $("kb-select");
  const keep = select || box.value;
  box.replaceChildren(...info.kbs.map((name) => new Option(name, name)));
  if (keep && info.kbs.includes(keep)) box.value = keep;
}

async function refreshKb(select) {
  await refreshKbList(select);
  const name = currentKb();
  $("kb-limits").textContent = `Files up to ${info.max_upload_bytes.toLocaleString()} bytes, ` +
    `of type ${info.suffixes.join(" ")}.`;
  $("kb-files").accept = info.suffixes.join(",");
  if (!name) { renderKb({ documents: [], chunks: [], total_chunks: 0, ingest: {} }); return; }
  const state = await api(`/ui/kb/${encodeURIComponent(name)}`);
  renderKb(state);
  if (["reading", "embedding"].includes(state.ingest.state)) pollIngest(name);
}

function renderKb(state) {
  const rows = state.documents.map((d) => {
    const tr = document.createElement("tr");
    for (const value of [d.name, d.bytes, d.chunks]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small";
    remove.textContent = "delete";
    remove.title = `delete ${d.name} and its chunks`;
    remove.onclick = () => deleteDocument(d.name);
    const td = document.createElement("td");
    td.append(remove);
    tr.append(td);
    return tr;
  });
  $("kb-documents").querySelector("tbody").replaceChildren(...rows);
  $("kb-chunk-count").textContent = `(${state.total_chunks}` +
    (state.chunks.length < state.total_chunks ? `, first ${state.chunks.length} shown)` : ")");
  $("kb-chunks").replaceChildren(...state.chunks.map((c) => chunkItem(c, null)));
  renderIngest(state.ingest || {});
}

function chunkItem(c, n) {
  const li = document.createElement("li");
  const meta = document.createElement("span");
  meta.className = "meta";
  const score = c.score === undefined ? "" : `, score ${Number(c.score).toFixed(3)}`;
  // "cite" is the file's name, with the pages of a PDF's chunk: "paper.pdf p. 3"
  meta.textContent = `${n === null ? "" : `[${n}] `}${c.cite} chunk ${c.chunk}${score}`;
  li.append(meta, document.createTextNode(c.text));
  return li;
}

function renderIngest(p) {
  const bar = $("kb-progress");
  bar.max = Math.max(p.total || 0, 1);
  bar.value = p.state === "done" ? bar.max : (p.done || 0);
  const words = { idle: "", reading: "reading documents...",
                  embedding: `embedding ${p.done}/${p.total} chunks`, done: "done", failed: "failed" };
  $("kb-status").textContent = [words[p.state] ?? p.state, p.message].filter(Boolean).join(": ");
  $("kb-ingest").disabled = ["reading", "embedding"].includes(p.state);
}

function pollIngest(name) {
  clearTimeout(kb.polling);
  const tick = async () => {
    try {
      const p = await api(`/ui/kb/${encodeURIComponent(name)}/ingest`);
      const running = ["reading", "embedding"].includes(p.state);
      // a finished ingest shows "done" together with the documents and chunks it made
      if (running || name !== currentKb()) renderIngest(p);
      if (running) kb.polling = setTimeout(tick, 400);
      else if (name === currentKb()) await refreshKb();
    } catch (e) { showError(e); }
  };
  tick();
}

async function createKb(event) {
  event.preventDefault();
  showError(null);
  const name = $("kb-new-name").value.trim();
  try {
    await api("/ui/kb", { json: { name } });
    $("kb-new-name").value = "";
    await refreshKb(name);
  } catch (e) { showError(e); }
}

async function uploadFiles(event) {
  event.preventDefault();
  showError(null);
  const name = currentKb();
  if (!name) { showError("Create or pick a knowledge base first."); return; }
  const chosen = [...$("kb-files").files];
  const path = `/ui/kb/${encodeURIComponent(name)}/documents`;
  const send = (file, query) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return fetch(path + query, { method: "POST", body: form, headers: headers() });
  };
  try {
    for (const [i, file] of chosen.entries()) {
      $("kb-status").textContent = `uploading ${file.name} (${i + 1}/${chosen.length})`;
      let response = await send(file, "");
      // an existing name is refused (409) so that nothing is replaced without asking
      if (response.status === 409 && confirm(`${file.name} is already in ${name}. Replace it?`)) {
        response = await send(file, "?replace=true");
      }
      if (!response.ok && response.status !== 409) throw new Error(await errorText(response));
    }
    $("kb-files").value = "";
    await refreshKb();
    $("kb-status").textContent = `uploaded ${chosen.length} file(s); press Ingest`;
  } catch (e) { showError(e); }
}

// The server deletes the file and re-ingests, which drops its chunks and embeds nothing anew.
async function deleteDocument(file) {
  showError(null);
  const name = currentKb();
  if (!confirm(`Delete ${file} and its chunks from ${name}?`)) return;
  try {
    const path = `/ui/kb/${encodeURIComponent(name)}/documents/${encodeURIComponent(file)}`;
    renderIngest(await api(path, { method: "DELETE" }));
    pollIngest(name);
  } catch (e) { showError(e); }
}

async function startIngest() {
  showError(null);
  const name = currentKb();
  if (!name) { showError("Create or pick a knowledge base first."); return; }
  try {
    renderIngest(await api(`/ui/kb/${encodeURIComponent(name)}/ingest`, { method: "POST" }));
    pollIngest(name);
  } catch (e) { showError(e); }
}

// The answer with each [n] marked; a marked [n] and source n light up together.
function renderAnswer(text, sources) {
  const box = $("kb-answer");
  box.replaceChildren();
  const known = new Set((sources || []).map((s) => s.n));
  const cited = new Set();
  let at = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    const n = Number(m[1]);
    if (!known.has(n)) continue;
    box.append(document.createTextNode(text.slice(at, m.index)));
    const mark = document.createElement("mark");
    mark.className = "cite";
    mark.dataset.n = n;
    mark.textContent = m[0];
    mark.addEventListener("mouseenter", () => focusSource(n, true));
    mark.addEventListener("mouseleave", () => focusSource(n, false));
    mark.addEventListener("click", () => $(`source-${n}`)?.scrollIntoView({ block: "nearest" }));
    box.append(mark);
    cited.add(n);
    at = m.index + m[0].length;
  }
  box.append(document.createTextNode(text.slice(at)));
  return cited;
}

function focusSource(n, on) {
  $(`source-${n}`)?.classList.toggle("focus", on);
}

async function askKb(event) {
  event.preventDefault();
  showError(null);
  const name = currentKb();
  const question = $("kb-question").value.trim();
  if (!name || !question) return;
  $("kb-sources").replaceChildren();
  let text = "";
  $("kb-answer").textContent = "";
  try {
    const options = { ...samplerOptions(), temperature: 0 };
    const last = await streamChat({ model: info ? info.model : undefined, kb: name, options,
                                    messages: [{ role: "user", content: question }] },
      (piece) => { text += piece; $("kb-answer").textContent = text; });
    const sources = (last && last.sources) || [];
    const cited = renderAnswer(text, sources);
    $("kb-sources").replaceChildren(...sources.map((s) => {
      const li = chunkItem(s, s.n);
      li.id = `source-${s.n}`;
      li.value = s.n;
      if (cited.has(s.n)) li.classList.add("cited");
      return li;
    }));
  } catch (e) { showError(e); }
}

// ---- fine-tune --------------------------------------------------------------------------
const ft = { job: null, polling: null, exported: null };  // exported: the export's model name

function fillForm() {
  const form = $("ft-form");
  $("ft-model").textContent = info.model;
  for (const [name, options] of Object.entries(info.choices)) {
    form.elements[name].replaceChildren(...options.map((o) => new Option(o, o)));
  }
  for (const [name, value] of Object.entries(info.form)) {
    if (form.elements[name]) form.elements[name].value = value;
  }
  showStage();
  fillPredictForm();
}

// SFT trains on plain datasets, DPO on preference sets (chosen and rejected) with its beta.
function showStage() {
  const dpo = $("ft-stage").value === "dpo";
  const names = dpo ? info.preference_datasets : info.datasets;
  $("ft-dataset").replaceChildren(...names.map((d) => new Option(d, d)));
  $("ft-beta").hidden = !dpo;
  $("ft-beta").querySelector("input").disabled = !dpo;  // a disabled field is not sent
}

function formValues(form = $("ft-form")) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    const raw = el.value.trim();
    // numbers stay text when they do not parse, so the server names the bad field
    out[el.name] = el.tagName === "SELECT" || raw === "" || !Number.isFinite(Number(raw)) ? raw : Number(raw);
  }
  return out;
}

async function startJob(event) {
  event.preventDefault();
  showError(null);
  try {
    const status = await api("/ui/jobs", { json: formValues() });
    ft.job = status.id;
    renderJob(status);
    pollJob();
  } catch (e) { showError(e); }
}

function pollJob() {
  clearTimeout(ft.polling);
  const tick = async () => {
    if (!ft.job) return;
    try {
      const status = await api(`/ui/jobs/${ft.job}`);
      renderJob(status);
      const exporting = status.export && status.export.state === "running";
      const predicting = status.predict && status.predict.state === "running";
      if (status.state === "running" || exporting || predicting) ft.polling = setTimeout(tick, 1000);
      else refreshJobs().catch(showError);
    } catch (e) { showError(e); }
  };
  tick();
}

const RESUMABLE = ["interrupted", "stopped", "failed"];  // jobs.RESUMABLE

function renderJob(status) {
  $("ft-job-id").textContent = status.id;
  $("ft-state").textContent = status.state;
  $("ft-state").dataset.state = status.state;
  const last = status.points.length ? status.points[status.points.length - 1] : null;
  $("ft-steps").textContent = last ? `step ${last.step}${status.total_steps ? "/" + status.total_steps : ""}, ` +
    `loss ${last.loss.toFixed(4)}` : "";
  $("ft-message").textContent = status.message || "";
  $("ft-start").disabled = status.state === "running";
  $("ft-stop").disabled = status.state !== "running";
  const exp = status.export;
  const busy = status.state === "running" || (exp && exp.state === "running") ||
    (status.predict && status.predict.state === "running");
  $("ft-export").disabled = busy;
  $("ft-resume").disabled = busy || !RESUMABLE.includes(status.state);
  $("ft-delete").disabled = busy;
  ft.exported = exp && exp.state === "finished" ? exp.model : null;
  $("ft-chat").hidden = !ft.exported;
  $("ft-export-path").textContent = !exp ? "not yet" : exp.state === "finished" ?
    exp.path + (exp.adapter ? `  (adapter: ${exp.adapter})` : "") :
    exp.state === "running" ? "exporting..." : `failed: ${exp.message}`;
  drawCurve(status.points, status.total_steps);
  renderPredict(status);
}

// ---- evaluate & predict -----------------------------------------------------------------
const SCORES = ["predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"];

function fillPredictForm() {
  const form = $("pr-form");
  $("pr-dataset").replaceChildren(...info.eval_datasets.map((d) => new Option(d, d)));
  for (const [name, value] of Object.entries(info.predict_form)) form.elements[name].value = value;
}

function tableRow(cells) {
  const tr = document.createElement("tr");
  for (const value of cells) {
    const td = document.createElement("td");
    td.textContent = value;
    tr.append(td);
  }
  return tr;
}

function renderPredict(status) {
  const p = status.predict;
  const busy = status.state === "running" || (p && p.state === "running");
  $("pr-start").disabled = busy;
  $("pr-state").textContent = !p ? "not yet" :
    p.state === "finished" ? `${p.eval_dataset}, ${p.source}: ${p.path}` :
    p.state === "running" ? `predicting... ${p.message || ""}` : `${p.state}: ${p.message}`;
  $("pr-state").dataset.state = p ? p.state : "";
  const done = p && p.state === "finished";
  $("pr-scores").hidden = $("pr-sample").hidden = !done;
  if (!done) return;
  $("pr-scores").querySelector("tbody").replaceChildren(
    tableRow(SCORES.map((k) => p.metrics[k].toFixed(2))));
  $("pr-sample").querySelector("tbody").replaceChildren(
    ...p.sample.map((r) => tableRow([r.prompt, r.predict, r.label])));
}

async function startPredict(event) {
  event.preventDefault();
  showError(null);
  if (!ft.job) { showError("Start or pick a fine-tune job first."); return; }
  try {
    renderJob(await api(`/ui/jobs/${ft.job}/predict`, { json: formValues($("pr-form")) }));
    pollJob();
  } catch (e) { showError(e); }
}

// The loss curve as inline SVG: raw points and a line through them, axes with their ranges.
function drawCurve(points, total) {
  const svg = $("ft-curve");
  const NS = "http://www.w3.org/2000/svg";
  const W = 480, H = 260, left = 52, right = 12, top = 12, bottom = 30;
  svg.replaceChildren();
  const el = (name, attrs, text) => {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  el("rect", { x: left, y: top, width: W - left - right, height: H - top - bottom, fill: "none", stroke: "#ccd" });
  if (!points.length) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#889" }, "loss appears here");
    return;
  }
  const steps = points.map((p) => p.step), losses = points.map((p) => p.loss);
  // the x axis spans the whole run, so the curve grows towards the right edge as it trains
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1, total || 0);
  let y0 = Math.min(...losses), y1 = Math.max(...losses);
  if (y1 - y0 < 1e-6) { y0 -= 0.5; y1 += 0.5; }
  const sx = (s) => left + (s - x0) / (x1 - x0) * (W - left - right);
  const sy = (v) => top + (y1 - v) / (y1 - y0) * (H - top - bottom);
  el("polyline", { points: points.map((p) => `${sx(p.step)},${sy(p.loss)}`).join(" "),
                   fill: "none", stroke: "#3d6fa8", "stroke-width": 1.8, class: "loss-line" });
  for (const p of points) {
    el("circle", { cx: sx(p.step), cy: sy(p.loss), r: 2.5, fill: "#3d6fa8", class: "loss-point" });
  }
  el("text", { x: left - 6, y: top + 10, "text-anchor": "end", "font-size": 11 }, y1.toFixed(3));
  el("text", { x: left - 6, y: H - bottom, "text-anchor": "end", "font-size": 11 }, y0.toFixed(3));
  el("text", { x: left, y: H - 10, "font-size": 11 }, `step ${x0}`);
  el("text", { x: W - right, y: H - 10, "text-anchor": "end", "font-size": 11 }, `step ${x1}`);
  el("text", { x: 14, y: H / 2, "font-size": 11, transform: `rotate(-90 14 ${H / 2})`, "text-anchor": "middle" }, "loss");
}

async function refreshJobs() {
  if (!info) info = await api("/ui/info");
  if (!$("ft-stage").options.length) fillForm();
  const { jobs } = await api("/ui/jobs");
  $("ft-jobs").replaceChildren(...jobs.map((j) => {
    const li = document.createElement("li");
    li.textContent = `${j.id}: ${j.stage} on ${j.dataset}, ${j.state}`;
    li.addEventListener("click", () => { ft.job = j.id; pollJob(); });
    return li;
  }));
  if (!ft.job && jobs.length) { ft.job = jobs[0].id; pollJob(); }
}

async function stopJob() {
  try { renderJob(await api(`/ui/jobs/${ft.job}/stop`, { method: "POST" })); } catch (e) { showError(e); }
}

// The trainer starts again in the job's folder and continues from its newest checkpoint.
async function resumeJob() {
  showError(null);
  try {
    renderJob(await api(`/ui/jobs/${ft.job}/resume`, { method: "POST" }));
    pollJob();
  } catch (e) { showError(e); }
}

async function deleteJob() {
  showError(null);
  if (!confirm(`Delete job ${ft.job} with its checkpoints and export?`)) return;
  try {
    await api(`/ui/jobs/${ft.job}`, { method: "DELETE" });
    clearTimeout(ft.polling);
    ft.job = null;
    $("ft-job-id").textContent = "";
    $("ft-state").textContent = "deleted";
    for (const id of ["ft-stop", "ft-export", "ft-resume", "ft-delete"]) $(id).disabled = true;
    await refreshJobs();
  } catch (e) { showError(e); }
}

async function exportJob() {
  showError(null);
  try {
    renderJob(await api(`/ui/jobs/${ft.job}/export`, { method: "POST" }));
    pollJob();
  } catch (e) { showError(e); }
}

// ---- start ----------------------------------------------------------------------------
function start() {
  $("api-key").value = localStorage.getItem(KEY) || "";
  $("api-key").addEventListener("change", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY, key); else localStorage.removeItem(KEY);
    boot();
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) sendChat(e);
  });
  $("chat-stop").addEventListener("click", () => chat.controller && chat.controller.abort());
  $("chat-clear").addEventListener("click", () => {
    chat.messages = [];
    saveHistory();
    $("chat-log").replaceChildren();
  });
  $("kb-create").addEventListener("submit", createKb);
  $("kb-upload").addEventListener("submit", uploadFiles);
  $("kb-ingest").addEventListener("click", startIngest);
  $("kb-select").addEventListener("change", () => refreshKb().catch(showError));
  $("kb-ask").addEventListener("submit", askKb);
  $("ft-form").addEventListener("submit", startJob);
  $("ft-stage").addEventListener("change", showStage);
  $("ft-stop").addEventListener("click", stopJob);
  $("ft-export").addEventListener("click", exportJob);
  $("ft-chat").addEventListener("click", chatWithExport);
  $("chat-model").addEventListener("change", () => localStorage.setItem(MODEL, $("chat-model").value));
  $("ft-resume").addEventListener("click", resumeJob);
  $("ft-delete").addEventListener("click", deleteJob);
  $("pr-form").addEventListener("submit", startPredict);
  window.addEventListener("hashchange", showPage);
  restoreHistory();
  boot();
}

async function boot() {
  showError(null);
  try {
    info = await api("/ui/info");
    await refreshModels();
    fillForm();
    document.body.dataset.ready = "1";
  } catch (e) { showError(e); }
  showPage();
}

start();

// The admin console: reads the same JSON APIs as every client, every few seconds.
"use strict";
const API = "/api/v1";
const REFRESH_MS = 2000;
let token = sessionStorage.getItem("volreg-token");
let last = null; // previous metrics sample, for rates
const charts = {};

const $ = (id) => document.getElementById(id);

async function call(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) { logout(); throw new Error("logged out"); }
  const type = resp.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error(body.error ? body.error.message : `HTTP ${resp.status}`);
  return body;
}

function logout() {
  token = null;
  sessionStorage.removeItem("volreg-token");
  $("console").hidden = true;
  $("login").hidden = false;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const body = await call(`${API}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
    });
    if (body.role !== "admin") throw new Error("this console needs an admin account");
    token = body.token;
    sessionStorage.setItem("volreg-token", token);
    start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

// Prometheus text: the sum of a metric's samples whose labels contain every given pair.
function metric(text, name, labels = {}) {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    // Label values may hold braces (route templates): the labels run to the last "}".
    const match = line.match(/^([a-z_]+)(\{(.*)\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)$/);
    if (!match || match[1] !== name) continue;
    const have = match[3] || "";
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) {
      total += Number(match[4]);
    }
  }
  return total;
}

async function refreshMetrics() {
  const text = await call("/metrics");
  const now = Date.now();
  const saves = metric(text, "volreg_saves_total", { outcome: "ok" });
  const all = metric(text, "volreg_saves_total");
  const form = "/api/v1/candidates/{candidate_id}/forms/{batch}";
  const sum = metric(text, "volreg_http_request_seconds_sum", { route: form });
  const count = metric(text, "volreg_http_request_seconds_count", { route: form });
  $("saves-total").textContent = saves;
  $("saves-refused").textContent = all - saves;
  $("hot-dropped").textContent = metric(text, "volreg_hot_events_total", { outcome: "dropped" });
  if (last) {
    const seconds = (now - last.at) / 1000;
    $("saves-rate").textContent = ((saves - last.saves) / seconds).toFixed(1);
    const requests = count - last.count;
    $("saves-latency").textContent =
      requests > 0 ? `${(((sum - last.sum) / requests) * 1000).toFixed(1)} ms` : "–";
  }
  last = { at: now, saves, sum, count };
}

function bars(id, label, entries) {
  const labels = entries.map((e) => e.item);
  const data = entries.map((e) => e.count);
  if (!charts[id]) {
    charts[id] = new Chart($(id), {
      type: "bar",
      data: { labels, datasets: [{ label, data, backgroundColor: "#3b6fd8" }] },
      options: { indexAxis: "y", animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: false } } },
    });
  } else {
    charts[id].data.labels = labels;
    charts[id].data.datasets[0].data = data;
    charts[id].update();
  }
}

function list(id, entries) {
  $(id).replaceChildren(...entries.map((e) => {
    const li = document.createElement("li");
    li.textContent = `${e.item} — ${e.count}`;
    return li;
  }));
}

async function refreshHot(batch) {
  const windowName = $("window").value;
  const q = new URLSearchParams({ batch, window: windowName });
  const hot = await call(`${API}/admin/hot?${q}`);
  bars("hot-institutions", "any position", hot.institutions.any_position);
  list("hot-list", hot.institutions.first_choice);
  bars("hot-majors", "any position", hot.majors.any_position);
  list("hot-keys", hot.read_keys);
}

async function refreshProgress(batch) {
  const progress = await call(`${API}/admin/progress?${new URLSearchParams({ batch })}`);
  const p = progress.province;
  for (const k of ["candidates", "none", "saved", "submitted"]) $(`progress-${k}`).textContent = p[k];
  bars("progress-chart", "candidates", [
    { item: "no form", count: p.none },
    { item: "saved", count: p.saved },
    { item: "submitted", count: p.submitted },
  ]);
}

const shown = (value) => (value === null || value === undefined ? "–" : String(value));

async function refreshPipeline() {
  const p = await call(`${API}/admin/pipeline`);
  $("queue-waiting").textContent = shown(p.waiting);
  $("dead-letters").textContent = shown(p.dead_letters);
  $("hot-waiting").textContent = shown(p.hot_events_waiting);
  const run = p.last_reconcile;
  $("reconcile-outcome").textContent = run
    ? `${run.outcome} (${run.mode}, ${new Date(run.started_at).toLocaleString()})` : "none yet";
  $("reconcile-counts").textContent = run
    ? `${run.checked} / ${run.drifted} / ${run.repaired_redis + run.repaired_mysql}` : "–";
  $("pipeline-errors").textContent = Object.entries(p.errors).map(([k, v]) => `${k}: ${v}`).join("; ");
}

async function refresh() {
  if (!token) return;
  const batch = $("batch").value.trim();
  const results = await Promise.allSettled([
    refreshMetrics(), refreshHot(batch), refreshProgress(batch), refreshPipeline(),
  ]);
  const failed = results.filter((r) => r.status === "rejected");
  $("updated").textContent = failed.length
    ? `updated ${new Date().toLocaleTimeString()}; ${failed[0].reason.message}`
    : `updated ${new Date().toLocaleTimeString()}`;
}

$("import").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return;
  $("import-status").textContent = `uploading ${file.name}…`;
  try {
    const job = await call(`${API}/admin/imports?${new URLSearchParams({ name: file.name })}`, {
      method: "POST", body: file,
      headers: { "Content-Type": file.name.endsWith(".gz") ? "application/gzip" : "text/csv" },
    });
    $("import-status").textContent =
      `job ${job.job}: ${job.state}, ${job.imported} imported, ${job.rejected} rejected`;
  } catch (err) {
    $("import-status").textContent = `import failed: ${err.message}`;
  }
});

let timer = null;
function start() {
  $("login").hidden = true;
  $("console").hidden = false;
  refresh();
  if (!timer) timer = setInterval(refresh, REFRESH_MS);
}

if (token) start();

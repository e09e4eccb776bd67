// The bertnode dashboard: it reads the coordinators' API (GET /v1/status, a job and
// its event log) with the bearer token the user gives, and draws what it reads. It
// writes nothing. The functions that turn API objects into HTML are pure, so that
// node --test checks them (ui_test.js).
"use strict";

// esc makes text safe inside HTML: job names, reasons and log lines are the users'.
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmtNum(x, digits = 4) {
  return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "-";
}

// fmtDur is a duration in seconds as 1h02m, 3m05s or 12s.
function fmtDur(s) {
  if (!(s > 0)) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

// work is a job's work done and to do: optimizer steps, or a predict job's units.
function work(job) {
  const p = job.progress || {};
  if (job.kind === "predict") return [p.units_done || 0, (job.work || {}).units || 0];
  return [p.step || 0, p.total_steps || 0];
}

// eta is the time left in seconds at the pace of the work so far (0: unknown).
function eta(job) {
  const [done, total] = work(job);
  const spent = (Date.parse((job.progress || {}).updated) - Date.parse(job.started)) / 1000;
  if (!(done > 0) || !(total > done) || !(spent > 0)) return 0;
  return ((total - done) * spent) / done;
}

function bar(step, total) {
  const pct = total > 0 ? Math.min(100, (100 * step) / total) : 0;
  return `<span class="bar" title="${step}/${total}"><span style="width:${pct.toFixed(1)}%"></span></span>`;
}

function evalText(ev) {
  return Object.keys(ev || {}).sort().map((k) => `${esc(k)}=${fmtNum(ev[k])}`).join(" ");
}

// jobsTable is the jobs, newest first.
function jobsTable(jobs, selected) {
  if (!jobs.length) return "<p>No jobs.</p>";
  const rows = [...jobs].reverse().map((j) => {
    const p = j.progress || {};
    const predict = j.kind === "predict";
    const [done, total] = work(j);
    const nodes = j.generation ? j.generation.members.length : 0;
    return `<tr class="job${j.id === selected ? " selected" : ""}" data-job="${esc(j.id)}">` +
      `<td>${esc(j.id)}</td><td>${esc(j.name)}</td><td class="${esc(j.state)}">${esc(j.state)}</td>` +
      `<td>${predict ? "predict" : `${nodes}/${j.cluster ? j.cluster.nodes : "-"}`}</td>` +
      `<td>${bar(done, total)} ${done}/${total || "-"}${predict ? " units" : ""}</td>` +
      `<td>${predict ? "-" : fmtNum(p.loss)}</td>` +
      `<td class="reason">${predict ? `${fmtNum(p.samples_per_s, 0)} records/s` : evalText(p.eval)}</td><td>${fmtDur(eta(j))}</td>` +
      `<td class="reason">${esc(j.reason)}</td></tr>`;
  });
  return "<table><tr><th>ID</th><th>Name</th><th>State</th><th>Nodes</th><th>Progress</th><th>Loss</th>" +
    "<th>Latest eval</th><th>Left</th><th>Reason</th></tr>" + rows.join("") + "</table>";
}

function nodesTable(nodes) {
  if (!nodes.length) return "<p>No nodes.</p>";
  return "<table><tr><th>ID</th><th>Name</th><th>Device</th><th>Health</th><th>Job</th><th>Samples/s</th><th>Step ms</th></tr>" +
    nodes.map((n) => {
      const s = n.stats && n.stats.job === n.job ? n.stats : {};
      const health = n.health + (n.drain ? " (draining)" : "") + (n.unproven ? " (unproven)" : "");
      return `<tr><td>${esc(n.id)}</td><td>${esc(n.name)}</td><td>${esc(n.device)}</td>` +
        `<td class="${esc(n.health)}">${esc(health)}</td><td>${esc(n.job || "idle")}</td>` +
        `<td>${fmtNum(s.samples_per_s, 1)}</td><td>${fmtNum(s.step_ms, 0)}</td></tr>`;
    }).join("") + "</table>";
}

function membersTable(members) {
  return "<table><tr><th>ID</th><th>API</th><th>Role</th><th>Health</th></tr>" +
    members.map((m) => `<tr><td>${esc(m.id)}</td><td>${esc(m.api_addr)}</td>` +
      `<td>${m.leader ? "leader" : m.voter ? "voter" : "non-voter"}</td><td class="${esc(m.health)}">${esc(m.health)}</td></tr>`).join("") +
    "</table>";
}

// evalCurves are a job's evaluations from its eval events: metric -> [[step, value]].
function evalCurves(events) {
  const out = {};
  for (const e of events || []) {
    if (e.kind !== "eval" || !e.metrics) continue;
    for (const [k, v] of Object.entries(e.metrics)) {
      if (typeof v === "number" && isFinite(v)) (out[k] = out[k] || []).push([e.step, v]);
    }
  }
  return out;
}

// chart draws one metric's curve ([[step, value]]) as an SVG of w x h, scaled to its
// own range, titled with its name, last value and range: one small chart per metric,
// since metrics differ in scale (loss, perplexity, F1).
function chart(name, pts, w = 240, h = 120) {
  const pad = 24;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const min = Math.min(...ys), max = Math.max(...ys);
  let xmin = Math.min(...xs), xmax = Math.max(...xs), lo = min, hi = max;
  if (xmax === xmin) xmax = xmin + 1;
  if (hi === lo) { lo -= 0.5; hi += 0.5; }
  const sx = (x) => pad + ((x - xmin) / (xmax - xmin)) * (w - 2 * pad);
  const sy = (y) => h - pad - ((y - lo) / (hi - lo)) * (h - 2 * pad);
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<text x="${pad}" y="12">${esc(name)}: ${fmtNum(ys[ys.length - 1])} (${fmtNum(min, 3)}..${fmtNum(max, 3)})</text>` +
    `<rect x="${pad}" y="${pad}" width="${w - 2 * pad}" height="${h - 2 * pad}" fill="none" stroke="#ddd"/>` +
    `<polyline fill="none" stroke="#4a7bd0" stroke-width="1.5" points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")}"/>` +
    `<text x="${pad}" y="${h - 8}">${xmin}</text><text x="${w - pad}" y="${h - 8}" text-anchor="end">step ${xmax}</text></svg>`;
}

// charts are a job's evaluation curves, one chart per metric.
function charts(events) {
  const curves = evalCurves(events);
  const names = Object.keys(curves).sort();
  if (!names.length) return "<p>No evaluations yet.</p>";
  return `<div class="charts">${names.map((n) => chart(n, curves[n])).join("")}</div>`;
}

// jobDetail is a job's page: its generation, evaluations, results and event log.
function jobDetail(job, events) {
  let out = `<h2>${esc(job.id)} ${esc(job.name)} <span class="${esc(job.state)}">${esc(job.state)}</span></h2>`;
  if (job.generation) {
    out += `<p>Generation ${job.generation.gen} (${esc(job.generation.reason)}): ` +
      job.generation.members.map((m, r) => `rank ${r} ${esc(m.node)}`).join(", ") + "</p>";
  }
  if (job.kind === "predict") {
    const [done, total] = work(job);
    out += `<p>Prediction: ${done} of ${total} units done (${(job.progress || {}).records || 0} records). ` +
      `<code>bertnode download ${esc(job.id)} --output OUT.jsonl</code> once it succeeded.</p>`;
  } else {
    const p = job.progress || {};
    if (p.loss_scale > 0) { // fp16 only
      const n = p.skipped_steps || 0;
      out += `<p>Loss scale ${p.loss_scale} (${n} ${n === 1 ? "step" : "steps"} skipped).</p>`;
    }
    out += charts(events);
  }
  const kinds = Object.keys(job.results || {}).sort();
  if (kinds.length) {
    out += "<p>" + kinds.map((k) => `${esc(k)} model: step ${job.results[k].step} ` +
      `(<code>bertnode download ${esc(job.id)} --kind ${esc(k)} --output DIR</code>)`).join("<br>") + "</p>";
  }
  const lines = (events || []).slice(-200).map((e) => `${esc(e.time)}  ${esc(e.kind)}  ${esc(e.node || "")}  ${esc(e.message)}`);
  return out + `<pre class="log">${lines.join("\n")}</pre>`;
}

if (typeof module !== "undefined") {
  module.exports = { esc, fmtDur, eta, jobsTable, nodesTable, membersTable, evalCurves, chart, charts, jobDetail };
} else {
  // In the browser: the token from the address's fragment (bertnode ui) or the form.
  const $ = (id) => document.getElementById(id);
  // The fragment may carry the token (bertnode ui) and a job to show (#job=job-3, which
  // stays in the address, so that the page can be linked to).
  const frag = new URLSearchParams(location.hash.slice(1));
  let selected = frag.get("job") || "";
  if (frag.has("token")) {
    sessionStorage.setItem("bertnode-token", frag.get("token"));
    history.replaceState(null, "", location.pathname + (selected ? "#job=" + encodeURIComponent(selected) : ""));
  }
  async function get(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem("bertnode-token") } });
    if (r.status === 401 || r.status === 403) {
      sessionStorage.removeItem("bertnode-token");
      throw new Error("the token was refused");
    }
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  }
  async function refresh() {
    if (!sessionStorage.getItem("bertnode-token")) {
      $("login").hidden = false;
      $("main").hidden = true;
      return;
    }
    try {
      const st = await get("/v1/status");
      $("login").hidden = true;
      $("main").hidden = false;
      $("leader").textContent = `leader ${st.leader || "none"}, raft index ${st.index}`;
      $("jobs").innerHTML = jobsTable(st.jobs, selected);
      $("nodes").innerHTML = nodesTable(st.nodes);
      $("members").innerHTML = membersTable(st.members);
      if (selected) {
        const [job, logs] = await Promise.all([get(`/v1/jobs/${encodeURIComponent(selected)}`), get(`/v1/jobs/${encodeURIComponent(selected)}/logs`)]);
        $("job").innerHTML = jobDetail(job, logs.events);
        $("job").hidden = false;
      }
      $("error").textContent = "";
    } catch (e) {
      $("error").textContent = String(e.message || e);
      if (!sessionStorage.getItem("bertnode-token")) $("login").hidden = false;
    }
  }
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("bertnode-token", $("token").value.trim());
    refresh();
  });
  $("jobs").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-job]");
    if (tr) {
      selected = tr.dataset.job === selected ? "" : tr.dataset.job;
      history.replaceState(null, "", location.pathname + (selected ? "#job=" + encodeURIComponent(selected) : ""));
      $("job").hidden = !selected;
      refresh();
    }
  });
  refresh();
  setInterval(refresh, 2000);
}

// node --test coordinator/ui/ui_test.js (TestDashboardScript runs it).
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const ui = require("./app.js");

test("users' text is escaped", () => {
  const html = ui.jobsTable([{ id: "job-1", name: "<img src=x onerror=alert(1)>", state: "failed", reason: "a&b", progress: {}, cluster: { nodes: 1 } }], "");
  assert.ok(!html.includes("<img"), html);
  assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;"));
  assert.ok(html.includes("a&amp;b"));
  const log = ui.jobDetail({ id: "job-1", name: "n", state: "running" }, [{ kind: "failure", message: "</pre><script>x</script>", time: "t" }]);
  assert.ok(!log.includes("<script>"), log);
});

test("jobs newest first, with progress, loss, latest eval and time left", () => {
  const jobs = [
    { id: "job-1", name: "a", state: "succeeded", progress: { step: 10, total_steps: 10 }, cluster: { nodes: 1 } },
    { id: "job-2", name: "b", state: "running", started: "2026-01-01T00:00:00Z", cluster: { nodes: 2 },
      generation: { gen: 1, members: [{ node: "n1" }, { node: "n2" }] },
      progress: { step: 25, total_steps: 100, loss: 0.5, eval: { f1: 0.9, accuracy: 0.8 }, updated: "2026-01-01T00:01:40Z" } },
  ];
  const html = ui.jobsTable(jobs, "job-2");
  assert.ok(html.indexOf("job-2") < html.indexOf("job-1"));
  assert.match(html, /class="job selected" data-job="job-2"/);
  assert.match(html, /2\/2/);
  assert.match(html, /width:25\.0%/);
  assert.match(html, /accuracy=0\.8000 f1=0\.9000/);
  assert.match(html, /5m00s/); // 75 steps left at 4 s a step
  assert.equal(ui.eta(jobs[0]), 0);
});

test("a predict job shows its units, records/s and no loss", () => {
  const j = { id: "job-3", name: "scores", state: "running", kind: "predict", started: "2026-01-01T00:00:00Z",
    work: { units: 4, block_records: 256, records: 1024, done: [[0, 1]] }, progress: { units_done: 2, records: 512, samples_per_s: 256, updated: "2026-01-01T00:00:10Z" } };
  const html = ui.jobsTable([j], "");
  assert.match(html, /2\/4 units/);
  assert.match(html, /256 records\/s/);
  assert.match(html, /<td>predict<\/td>/);
  assert.equal(ui.eta(j), 10);
  const detail = ui.jobDetail(j, []);
  assert.match(detail, /2 of 4 units done \(512 records\)/);
  assert.ok(!detail.includes("No evaluations"));
});

test("an fp16 job's page shows its loss scale and skipped steps, others none", () => {
  const j = { id: "job-4", name: "fp16", state: "running", progress: { step: 40, total_steps: 100, loss_scale: 32768, skipped_steps: 3 } };
  assert.match(ui.jobDetail(j, []), /<p>Loss scale 32768 \(3 steps skipped\)\.<\/p>/);
  j.progress.skipped_steps = 1;
  assert.match(ui.jobDetail(j, []), /Loss scale 32768 \(1 step skipped\)/);
  delete j.progress.skipped_steps;
  assert.match(ui.jobDetail(j, []), /Loss scale 32768 \(0 steps skipped\)/);
  assert.ok(!ui.jobDetail({ id: "job-5", name: "fp32", state: "running", progress: { step: 40, total_steps: 100 } }, []).includes("Loss scale"));
});

test("durations", () => {
  assert.equal(ui.fmtDur(0), "-");
  assert.equal(ui.fmtDur(12.4), "12s");
  assert.equal(ui.fmtDur(185), "3m05s");
  assert.equal(ui.fmtDur(3720), "1h02m");
});

test("eval curves come from eval events", () => {
  const c = ui.evalCurves([
    { kind: "submitted", message: "x" },
    { kind: "eval", step: 10, metrics: { f1: 0.5, loss: 0.7 } },
    { kind: "eval", step: 20, metrics: { f1: 0.75, loss: 0.4 } },
    { kind: "checkpoint", step: 20 },
  ]);
  assert.deepStrictEqual(c, { f1: [[10, 0.5], [20, 0.75]], loss: [[10, 0.7], [20, 0.4]] });
});

test("each metric's chart scales its curve into the box", () => {
  const svg = ui.chart("f1", [[0, 0.5], [50, 1], [100, 0.75]], 200, 100);
  // x from 24 to 176, y from 76 (lowest) to 24 (highest)
  assert.match(svg, /points="24\.0,76\.0 100\.0,24\.0 176\.0,50\.0"/);
  assert.match(svg, />f1: 0\.7500 \(0\.500\.\.1\.000\)</);
  assert.match(ui.chart("loss", [[5, 1]], 200, 100), /points="24\.0,50\.0"/); // one point, flat range
  const all = ui.charts([{ kind: "eval", step: 1, metrics: { loss: 1, f1: 0.1 } }]);
  assert.equal((all.match(/<svg/g) || []).length, 2);
  assert.ok(all.indexOf(">f1:") < all.indexOf(">loss:"));
  assert.match(ui.charts([]), /No evaluations yet/);
});

test("nodes show their health, drain and their job's speed", () => {
  const html = ui.nodesTable([{ id: "n1", health: "alive", job: "job-2", drain: true, stats: { job: "job-2", samples_per_s: 123.45, step_ms: 250 } },
    { id: "n2", health: "dead" }]);
  assert.match(html, /alive \(draining\)/);
  assert.match(html, /123\.5/);
  assert.match(html, /class="dead">dead<\/td><td>idle/);
});

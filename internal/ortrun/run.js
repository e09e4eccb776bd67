// Runs exported models in ONNX Runtime (onnxruntime-node, which make onnx-deps installs
// into build/onnxruntime) for the Go tests, through internal/ortrun:
//   NODE_PATH=build/onnxruntime/node_modules node run.js JOBS_JSON OUT_JSON
// JOBS_JSON: [{"model": PATH, "inputs": {NAME: {"dims": [...], "data": [int...]}}}, ...]
// OUT_JSON: per job, {NAME: {"dims": [...], "data": [float...]}} for every output.
const ort = require('onnxruntime-node')
const fs = require('fs')

async function main() {
  const [jobsPath, outPath] = process.argv.slice(2)
  const jobs = JSON.parse(fs.readFileSync(jobsPath, 'utf8'))
  const out = []
  for (const job of jobs) {
    const s = await ort.InferenceSession.create(job.model, { intraOpNumThreads: 1, interOpNumThreads: 1 })
    const feeds = {}
    for (const [name, t] of Object.entries(job.inputs)) {
      feeds[name] = new ort.Tensor('int64', BigInt64Array.from(t.data, BigInt), t.dims)
    }
    const res = await s.run(feeds)
    const o = {}
    for (const name of s.outputNames) o[name] = { dims: res[name].dims, data: Array.from(res[name].data) }
    out.push(o)
  }
  fs.writeFileSync(outPath, JSON.stringify(out))
}

main().catch((e) => { console.error(e); process.exit(1) })

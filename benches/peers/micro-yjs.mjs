// The micro-benchmarks' JavaScript side: times yjs on the inputs shared/benches/doc_ops/main.rs wrote,
// reads criterion's medians for the same operations, and writes the Markdown table of both
// with their ratios (scripts/micro-bench.sh).
//
//   node micro-yjs.mjs --inputs DIR --criterion DIR --out FILE [--budget-ms MS]
import fs from 'node:fs'
import path from 'node:path'
import * as Y from 'yjs'

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => {
  if (a.startsWith('--')) pairs.push([a.slice(2), all[i + 1]])
  return pairs
}, []))
for (const required of ['inputs', 'criterion', 'out']) {
  if (!args[required]) {
    console.error(`usage: node micro-yjs.mjs --inputs DIR --criterion DIR --out FILE [--budget-ms MS] (missing --${required})`)
    process.exit(2)
  }
}
const budgetMs = Number(args['budget-ms'] || 3000)
const read = (name) => new Uint8Array(fs.readFileSync(path.join(args.inputs, name)))
const readLog = (name) => {
  const bytes = read(name)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const log = []
  for (let at = 0; at < bytes.length;) {
    const len = view.getUint32(at, true)
    log.push(bytes.subarray(at + 4, at + 4 + len))
    at += 4 + len
  }
  return log
}

/** Median milliseconds of `f`, after one warm-up run, over at least 5 runs or `budgetMs`. */
const time = (f) => {
  f()
  const samples = []
  const started = performance.now()
  while (samples.length < 5 || (performance.now() - started < budgetMs && samples.length < 100)) {
    const t = performance.now()
    f()
    samples.push(performance.now() - t)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)]
}

const emptySv = new Uint8Array([0])
const viaDoc = (u) => { const d = new Y.Doc(); Y.applyUpdate(d, u); return Y.encodeStateAsUpdate(d) }
// Sync step 2 without a live document (what ylambda does): merge, diff, state vector.
const syncByMerge = (updates) => {
  const merged = Y.mergeUpdates(updates)
  return [Y.diffUpdate(merged, emptySv), Y.encodeStateVectorFromUpdate(merged)]
}
// ... and by applying everything to a document, then encoding it.
const syncByDoc = (updates) => {
  const d = new Y.Doc()
  Y.transact(d, () => { for (const u of updates) Y.applyUpdate(d, u) })
  return [Y.encodeStateAsUpdate(d, emptySv), Y.encodeStateVector(d)]
}

const files = fs.readdirSync(args.inputs)
const logs = files.filter((f) => /^log-\d+\.bin$/.test(f)).sort((a, b) => parseInt(a.slice(4)) - parseInt(b.slice(4)))
const snapshots = files.filter((f) => /^snapshot-\d+mb\.bin$/.test(f)).sort((a, b) => parseInt(a.slice(9)) - parseInt(b.slice(9)))
const name = (f) => f.replace(/\.bin$/, '')
const bytesOf = (us) => us.reduce((n, u) => n + u.length, 0)

/** rows: [operation, input, bytes, yjs ms or null, how yjs did it] */
const rows = []
const edit = read('edit.bin')
rows.push(['validate', 'edit', edit.length, time(() => viaDoc(edit)), 'apply to a Y.Doc, encodeStateAsUpdate'])
for (const f of snapshots) {
  const u = read(f)
  rows.push(['validate', name(f), u.length, time(() => viaDoc(u)), 'apply to a Y.Doc, encodeStateAsUpdate'])
}
const best = (updates) => {
  const merge = time(() => syncByMerge(updates))
  const doc = time(() => syncByDoc(updates))
  return merge <= doc ? [merge, 'mergeUpdates, diffUpdate, encodeStateVectorFromUpdate (faster than via a Y.Doc)'] : [doc, 'via a Y.Doc (faster than mergeUpdates + diffUpdate)']
}
for (const f of logs) {
  const log = readLog(f)
  rows.push(['sync_step2', name(f), bytesOf(log), ...best(log)])
}
for (const f of snapshots) {
  const u = read(f)
  rows.push(['sync_step2', name(f), u.length, ...best([u])])
}
// A client that has the first 90% of every client's clock (a tab reconnecting).
for (const f of snapshots) {
  const u = read(f)
  const sv = read(f.replace(/\.bin$/, '.returning-sv'))
  const merge = time(() => [Y.diffUpdate(u, sv), Y.encodeStateVectorFromUpdate(u)])
  const doc = time(() => { const d = new Y.Doc(); Y.applyUpdate(d, u); return [Y.encodeStateAsUpdate(d, sv), Y.encodeStateVector(d)] })
  rows.push(['sync_step2_returning', name(f), u.length, ...(merge <= doc ? [merge, 'diffUpdate, encodeStateVectorFromUpdate (faster than via a Y.Doc)'] : [doc, 'via a Y.Doc (faster than diffUpdate)'])])
}
if (snapshots.length && logs.length > 1) {
  const all = [read(snapshots[0]), ...readLog(logs[1])]
  rows.push(['compaction', `${name(snapshots[0])}+${name(logs[1])}`, bytesOf(all), time(() => Y.mergeUpdates(all)), 'mergeUpdates'])
}
for (const f of snapshots) rows.push(['split', name(f), read(f).length, null, 'no yjs equivalent'])
for (const f of snapshots) rows.push(['split_checked', name(f), read(f).length, null, 'no yjs equivalent'])
if (snapshots.length) rows.push(['pieces', name(snapshots[0]), read(snapshots[0]).length, null, 'no yjs equivalent'])

/** criterion's median for doc/<operation>/<input>, in ms. */
const criterionMs = (op, input) => {
  const file = path.join(args.criterion, 'doc', op, input, 'new', 'estimates.json')
  if (!fs.existsSync(file)) throw new Error(`no criterion result ${file}: run cargo bench first`)
  return JSON.parse(fs.readFileSync(file, 'utf8')).median.point_estimate / 1e6
}
const ms = (v) => v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(4)
const kb = (b) => b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} KB` : `${b} B`
const lines = [
  '| operation | input | bytes | ylambda (yrs), ms | yjs, ms | yjs / ylambda | yjs did |',
  '| --- | --- | ---: | ---: | ---: | ---: | --- |'
]
const results = []
for (const [op, input, bytes, jsMs, how] of rows) {
  const rustMs = criterionMs(op, input)
  const ratio = jsMs == null ? '-' : `${(jsMs / rustMs).toFixed(2)}x`
  lines.push(`| ${op} | ${input} | ${kb(bytes)} | ${ms(rustMs)} | ${jsMs == null ? '-' : ms(jsMs)} | ${ratio} | ${how} |`)
  results.push({ op, input, bytes, rustMs, jsMs })
}
fs.writeFileSync(args.out, lines.join('\n') + '\n')
fs.writeFileSync(args.out.replace(/\.md$/, '') + '.json', JSON.stringify({ yjs: JSON.parse(fs.readFileSync(new URL('./node_modules/yjs/package.json', import.meta.url))).version, node: process.version, results }, null, 2) + '\n')
console.log(lines.join('\n'))

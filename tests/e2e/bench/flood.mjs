// Flood benchmark: what one connection sending as fast as it can does to everyone else.
//
// Calm rooms (two y-websocket clients each, the writer inserting a timestamped marker every
// BENCH_INTERVAL_MS) run for BENCH_SECONDS without a flooder, then for BENCH_SECONDS with one raw
// connection pumping sync-step-1 frames as fast as `ws` sends them. Reported per phase: markers
// delivered / lost and delivery latency (p50, p99, max); for the flooder: frames sent, time until
// the server closed it, and the close code. It fails only on a lost marker (correctness); every
// figure is a measurement, never a pass/fail threshold.
//
//   node bench/flood.mjs                     # from tests/e2e, YLAMBDA_BIN = the ylambda binary
//   BENCH_SECONDS=3 BENCH_ROOMS=3 node bench/flood.mjs   # CI's smoke run
//   BENCH_THROTTLE=api node bench/flood.mjs  # keep API Gateway's emulated route throttle on
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startServer, cleanup, syncedClient, rawClient, waitFor, roomName, syncStep1, Y } from '../lib/helpers.js'

const SECONDS = Number(process.env.BENCH_SECONDS || 10)
const ROOMS = Number(process.env.BENCH_ROOMS || 10)
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS || 100)
const LIMIT = process.env.BENCH_MESSAGES_PER_SEC || '100'
const apiThrottle = process.env.BENCH_THROTTLE === 'api'

const percentile = (sorted, p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN

const runPhase = async (pairs, name, during) => {
  const latencies = []
  const sent = []
  let seq = 0
  const observers = pairs.map(([, reader]) => {
    const seen = new Set()
    const observer = () => {
      const now = Date.now()
      for (const m of reader.text.toString().matchAll(/<(\w+):(\d+)>/g)) {
        // this phase's markers only (the text holds every earlier phase's too)
        if (m[1].startsWith(name) && !seen.has(m[1])) { seen.add(m[1]); latencies.push(now - Number(m[2])) }
      }
    }
    reader.text.observe(observer)
    return { reader, seen, observer }
  })
  const timers = pairs.map(([writer], i) => setInterval(() => {
    const id = `${name}${i}x${seq++}`
    sent.push({ id, room: i })
    writer.text.insert(writer.text.length, `<${id}:${Date.now()}>`)
  }, INTERVAL_MS))
  const extra = await during()
  for (const t of timers) clearInterval(t)
  const arrived = () => sent.filter(({ id, room }) => observers[room].seen.has(id)).length
  await waitFor(() => arrived() === sent.length, 30000, `${name}: every marker delivered`).catch(() => {})
  for (const { reader, observer } of observers) reader.text.unobserve(observer)
  const sorted = latencies.slice().sort((a, b) => a - b)
  return {
    phase: name,
    markers: sent.length,
    lost: sent.length - arrived(),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1],
    ...extra
  }
}

const main = async () => {
  const env = { YLAMBDA_MAX_MESSAGES_PER_SEC: LIMIT }
  if (!apiThrottle) Object.assign(env, { YLAMBDA_THROTTLE_MESSAGE_RATE: '1000000', YLAMBDA_THROTTLE_MESSAGE_BURST: '1000000' })
  const server = await startServer({ env })
  const pairs = []
  for (let i = 0; i < ROOMS; i++) {
    const room = roomName('calm')
    pairs.push([await syncedClient(server, room), await syncedClient(server, room)])
  }
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  const rows = []
  rows.push(await runPhase(pairs, 'calm', async () => { await wait(SECONDS * 1000); return {} }))
  rows.push(await runPhase(pairs, 'flood', async () => {
    // The flooder is its own process, so its sending does not slow the calm clients' event loop.
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--flooder', server.url, roomName('flood'), String(SECONDS)],
      { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk) => { out += chunk })
    await new Promise((resolve) => child.on('exit', resolve))
    return JSON.parse(out)
  }))
  console.log(`flood benchmark: ${ROOMS} calm rooms (a marker every ${INTERVAL_MS} ms each), ${SECONDS} s per phase, ` +
    `YLAMBDA_MAX_MESSAGES_PER_SEC=${LIMIT}, API throttle ${apiThrottle ? 'on (1000/s, burst 2000)' : 'off'}`)
  console.log('| phase | markers | lost | p50 ms | p99 ms | max ms | flooder frames | flooder closed after ms | close code |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const r of rows) {
    console.log(`| ${r.phase} | ${r.markers} | ${r.lost} | ${r.p50} | ${r.p99} | ${r.max} | ${r.flooderFrames ?? '-'} | ${r.flooderClosedAfterMs ?? '-'} | ${r.flooderClose ?? '-'} |`)
  }
  const lost = rows.reduce((n, r) => n + r.lost, 0)
  if (lost > 0) throw new Error(`${lost} markers were never delivered`)
}

/** The flooding connection, in a process of its own: prints what it managed as JSON. */
const flooder = async (url, room, seconds) => {
  const flood = await rawClient({ url }, `?room=${room}`)
  const frame = syncStep1(new Y.Doc())
  const started = Date.now()
  let frames = 0
  let closedAfter = null
  flood.closed.then(() => { closedAfter = Date.now() - started })
  // As fast as the socket takes them, in batches so the event loop still runs (the kernel takes
  // frames as fast as they come, so "until the buffer fills" would never yield).
  const pump = setInterval(() => {
    for (let i = 0; i < 200 && !flood.closeInfo && flood.ws.readyState === 1 && flood.ws.bufferedAmount < 1 << 20; i++) {
      flood.sendMessage(frame)
      frames++
    }
    flood.texts.length = 0 // the replies are not needed: do not keep them
  }, 1)
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  clearInterval(pump)
  process.stdout.write(JSON.stringify({
    flooderFrames: frames,
    flooderClosedAfterMs: closedAfter,
    flooderClose: flood.closeInfo ? flood.closeInfo.code : 'open'
  }))
  flood.ws.terminate()
}

if (process.argv[2] === '--flooder') {
  flooder(process.argv[3], process.argv[4], Number(process.argv[5])).then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })
} else {
  main().then(cleanup, async (err) => { console.error(err); await cleanup(); process.exit(1) })
}

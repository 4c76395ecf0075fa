// Load: many rooms, many clients, all typing at once; nothing may be lost.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, cleanup, makeClient, synced, syncedClient, waitFor, waitWhileProgressing, roomName } from '../lib/helpers.js'

const ROOMS = Number(process.env.LOAD_ROOMS || 20)
const CLIENTS = Number(process.env.LOAD_CLIENTS || 5)
const SECONDS = Number(process.env.LOAD_SECONDS || 10)
const INTERVAL_MS = Number(process.env.LOAD_INTERVAL_MS || 200)

after(cleanup)

/**
 * Inserts `marker` at a random position that is not inside another marker (markers end in '>'),
 * so that every marker stays one contiguous string whatever the others do concurrently.
 */
const insertAtRandomBoundary = (text, marker) => {
  const s = text.toString()
  const boundaries = [0]
  for (let i = 0; i < s.length; i++) if (s[i] === '>') boundaries.push(i + 1)
  text.insert(boundaries[Math.floor(Math.random() * boundaries.length)], marker)
}

test(`load: ${ROOMS} rooms x ${CLIENTS} clients typing for ${SECONDS} s lose nothing`, { timeout: 420000 }, async (t) => {
  const server = await startServer()
  const rooms = Array.from({ length: ROOMS }, (_, r) => ({ name: roomName(`load${r}`), clients: [] }))
  for (const room of rooms) {
    for (let c = 0; c < CLIENTS; c++) room.clients.push(makeClient(server, room.name))
  }
  const all = rooms.flatMap((r) => r.clients)
  await Promise.all(all.map((c) => synced(c, 30000)))
  t.diagnostic(`${all.length} clients connected and synced`)

  /** @type {Map<any, string[]>} markers each client inserted */
  const inserted = new Map(all.map((c) => [c, []]))
  const timers = []
  const started = Date.now()
  rooms.forEach((room, r) => room.clients.forEach((client, c) => {
    let n = 0
    const tick = () => {
      const marker = `<r${r}c${c}n${n++}>`
      insertAtRandomBoundary(client.text, marker)
      inserted.get(client).push(marker)
    }
    // spread the clients' ticks over the interval
    const first = setTimeout(() => {
      tick()
      timers.push(setInterval(tick, INTERVAL_MS))
    }, Math.floor(Math.random() * INTERVAL_MS))
    timers.push(first)
  }))
  await waitFor(() => Date.now() - started >= SECONDS * 1000, SECONDS * 1000 + 5000, 'edit period over')
  for (const timer of timers) { clearTimeout(timer); clearInterval(timer) }
  const total = [...inserted.values()].reduce((n, m) => n + m.length, 0)
  t.diagnostic(`${total} inserts in ${((Date.now() - started) / 1000).toFixed(1)} s (${(total / SECONDS).toFixed(0)}/s)`)

  const stopped = Date.now()
  const roomDone = (room) => {
    const texts = room.clients.map((c) => c.text.toString())
    if (!texts.every((s) => s === texts[0])) return false
    return room.clients.every((c) => inserted.get(c).every((m) => texts[0].includes(m)))
  }
  // Text held by all clients, summed: it only grows (nothing is deleted) as the server's backlog
  // drains. On a slow backend (single-threaded moto serves ~100 requests/s) draining takes a
  // while; a lost update shows as a stall.
  const delivered = () => all.reduce((n, c) => n + c.text.length, 0)
  await waitWhileProgressing(() => rooms.every(roomDone), delivered, { stallMs: 30000, capMs: 300000 }, () => {
    const bad = rooms.filter((r) => !roomDone(r))
    const r = bad[0]
    const lens = r ? r.clients.map((c) => c.text.length).join(',') : ''
    const missing = r ? r.clients.flatMap((c) => inserted.get(c)).filter((m) => !r.clients.every((c) => c.text.toString().includes(m))).length : 0
    // Per client of that room: which markers it lacks, its own and the others' (a sample).
    const perClient = r
      ? r.clients.map((c, i) => {
        const s = c.text.toString()
        const own = inserted.get(c).filter((m) => !s.includes(m))
        const others = r.clients.filter((o) => o !== c).flatMap((o) => inserted.get(o)).filter((m) => !s.includes(m))
        return `c${i}: ${own.length} own + ${others.length} others' missing ${JSON.stringify(others.slice(0, 4))}`
      }).join('; ')
      : ''
    return `all rooms converge with every marker; ${bad.length} rooms not yet (first: lengths ${lens}, ${missing} markers missing somewhere: ${perClient}; disconnected clients: ${all.filter((c) => !c.provider.wsconnected).length})`
  })
  t.diagnostic(`converged ${((Date.now() - stopped) / 1000).toFixed(1)} s after the edits stopped`)

  const finals = rooms.map((room) => room.clients[0].text.toString())
  rooms.forEach((room, r) => {
    const s = finals[r]
    const expected = room.clients.flatMap((c) => inserted.get(c))
    // every marker exactly once, nothing else
    assert.equal(s.length, expected.reduce((n, m) => n + m.length, 0), `room ${r}: no extra or duplicate text`)
    for (const m of expected) assert.equal(s.split(m).length - 1, 1, `room ${r}: ${m} exactly once`)
    if (ROOMS > 1) assert.ok(!s.includes(`<r${(r + 1) % ROOMS}c`), `room ${r}: no marker of another room`)
  })

  // the server's own copy is complete: a fresh client of each room gets all of it. The fresh
  // clients' $connects queue behind the $disconnects just sent (each a few DynamoDB calls,
  // and a compaction for each room's last one); on single-threaded moto, whose GSI queries slow
  // as a long test pass fills its tables, that took over 10 s on a CI machine. What is checked
  // here is that nothing is lost, not how fast, so the wait is generous.
  for (const c of all) c.destroy()
  const fresh = await Promise.all(rooms.map((room) => syncedClient(server, room.name, {}, 120000)))
  await waitFor(() => fresh.every((f, i) => f.text.toString() === finals[i]), 60000,
    'fresh clients see the full documents')
  assert.ok(server.alive())
})

// API Gateway's connection limits as emulated by ylambda dev (YLAMBDA_IDLE_TIMEOUT_SECS,
// YLAMBDA_MAX_CONNECTION_SECS), and what y-websocket makes of them.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, cleanup, rawClient, syncedClient, waitFor, never, roomName, syncStep1, Y } from '../lib/helpers.js'

after(cleanup)

test('an idle connection is closed after YLAMBDA_IDLE_TIMEOUT_SECS; a busy one is not', async (t) => {
  const server = await startServer({ env: { YLAMBDA_IDLE_TIMEOUT_SECS: '2' } })
  const room = roomName('idle')
  const idle = await rawClient(server, `?room=${room}`)
  const busy = await rawClient(server, `?room=${room}`)
  const doc = new Y.Doc()
  const t0 = Date.now()
  const timer = setInterval(() => busy.sendMessage(syncStep1(doc)), 500)
  try {
    await waitFor(() => idle.closeInfo, 8000, 'idle connection closed')
    const after = Date.now() - t0
    t.diagnostic(`idle connection closed after ${after} ms with ${JSON.stringify(idle.closeInfo)}`)
    assert.ok(after >= 1500, `not closed before the idle timeout (${after} ms)`)
    await never(() => busy.closeInfo, 3000, 'a connection sending every 500 ms was closed as idle')
  } finally {
    clearInterval(timer)
  }
})

test('a connection is closed after YLAMBDA_MAX_CONNECTION_SECS; y-websocket reconnects and nothing is lost', async (t) => {
  const server = await startServer({ env: { YLAMBDA_MAX_CONNECTION_SECS: '3' } })
  const room = roomName('maxconn')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  const t0 = Date.now()
  let n = 0
  const timer = setInterval(() => { a.text.insert(a.text.length, `<${n++}>`) }, 100)
  try {
    await waitFor(() => a.connections.count >= 3 && b.connections.count >= 3, 15000,
      () => `both clients were cut and reconnected twice (a: ${a.connections.count}, b: ${b.connections.count})`)
  } finally {
    clearInterval(timer)
  }
  t.diagnostic(`closes seen by a: ${JSON.stringify(a.closes.map((c) => ({ code: c.code, afterMs: c.at - t0 })))}`)
  assert.ok(a.closes[0].at - t0 >= 2000, 'not cut long before the limit')
  await waitFor(() => b.text.toString() === a.text.toString() && a.text.toString().includes(`<${n - 1}>`), 10000,
    'all edits made across the forced reconnects arrive')
  for (let i = 0; i < n; i++) assert.ok(b.text.toString().includes(`<${i}>`), `<${i}>`)
})

// Awareness (presence) through ylambda dev.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, cleanup, syncedClient, makeClient, synced, crashClient, waitFor, never, roomName } from '../lib/helpers.js'

let server
before(async () => {
  // a short idle timeout: y-websocket's own traffic (awareness renewal every 15 s) must keep a
  // lone client's connection alive, as API Gateway's 10-minute idle timeout would require
  server = await startServer({ env: { YLAMBDA_IDLE_TIMEOUT_SECS: '25' } })
})
after(cleanup)

const stateOf = (observer, subject) => observer.provider.awareness.getStates().get(subject.doc.clientID)

test('peers see each other\'s awareness state, and a late joiner sees it at once', async () => {
  const room = roomName('aw')
  const a = await syncedClient(server, room, { user: { name: 'alice' } })
  const b = await syncedClient(server, room, { user: { name: 'bob' } })
  await waitFor(() => stateOf(b, a)?.user?.name === 'alice', 5000, 'b sees alice')
  await waitFor(() => stateOf(a, b)?.user?.name === 'bob', 5000, 'a sees bob')
  // a change of state is relayed
  a.provider.awareness.setLocalStateField('cursor', { index: 3 })
  await waitFor(() => stateOf(b, a)?.cursor?.index === 3, 5000, 'b sees alice\'s cursor')
  // someone joining now gets the current states from the server (the peers' own renewals come
  // only every 15 s, so seeing them within 3 s means the server sent them)
  const c = await syncedClient(server, room, { user: { name: 'carol' } })
  await waitFor(() => stateOf(c, a)?.cursor?.index === 3 && stateOf(c, b)?.user?.name === 'bob', 3000,
    () => `late joiner sees alice and bob; has ${JSON.stringify([...c.provider.awareness.getStates()])}`)
})

test('a destroyed provider\'s state is removed for the remaining peer within a few seconds', async () => {
  const room = roomName('aw-leave')
  const a = await syncedClient(server, room, { user: { name: 'alice' } })
  const b = await syncedClient(server, room, { user: { name: 'bob' } })
  await waitFor(() => stateOf(b, a)?.user?.name === 'alice', 5000, 'b sees alice')
  const t0 = Date.now()
  a.destroy()
  await waitFor(() => !b.provider.awareness.getStates().has(a.doc.clientID), 5000, 'alice\'s state removed at bob')
  assert.ok(Date.now() - t0 < 5000)
})

test('a client that vanishes without saying goodbye is removed by the server', async () => {
  // the crashed client sends no awareness removal: only the server can tell the others
  // (the awareness timeout at the peer would take 30 s)
  const room = roomName('aw-crash')
  const a = await syncedClient(server, room, { user: { name: 'alice' } })
  const b = await syncedClient(server, room, { user: { name: 'bob' } })
  await waitFor(() => stateOf(b, a)?.user?.name === 'alice', 5000, 'b sees alice')
  const t0 = Date.now()
  crashClient(a)
  await waitFor(() => !b.provider.awareness.getStates().has(a.doc.clientID), 8000,
    'the server broadcast the removal of the crashed client\'s awareness state')
  assert.ok(Date.now() - t0 < 8000)
  assert.ok(b.provider.wsconnected)
})

test('a peer leaving removes only its own state, never the states of peers that stay', async () => {
  // y-websocket providers re-send every awareness change they receive (the provider's awareness
  // 'update' handler does not look at the origin), so each connection also carries the other
  // peers' states: the server must not take them for states that connection owns
  const room = roomName('aw-owner')
  const a = await syncedClient(server, room, { user: { name: 'alice' } })
  const b = await syncedClient(server, room, { user: { name: 'bob' } })
  const d = await syncedClient(server, room, { user: { name: 'dave' } })
  const c = await syncedClient(server, room, { user: { name: 'carol' } })
  await waitFor(() => [a, b, c, d].every((x) => x.provider.awareness.getStates().size === 4), 5000, 'everyone sees everyone')
  a.provider.awareness.setLocalStateField('cursor', { index: 1 })
  await waitFor(() => [b, c, d].every((x) => stateOf(x, a)?.cursor?.index === 1), 5000, 'alice\'s cursor everywhere')
  const removedAtCarol = []
  c.provider.awareness.on('change', ({ removed }) => removedAtCarol.push(...removed))
  b.destroy() // leaves cleanly
  crashClient(d) // vanishes
  await waitFor(() => removedAtCarol.includes(b.doc.clientID) && removedAtCarol.includes(d.doc.clientID), 8000, 'bob and dave removed at carol')
  await never(() => removedAtCarol.includes(a.doc.clientID) || removedAtCarol.includes(c.doc.clientID), 2000,
    () => `states of peers that stayed were removed at carol (alice=${a.doc.clientID}, carol=${c.doc.clientID}; removed: ${JSON.stringify(removedAtCarol)})`)
  assert.equal(stateOf(c, a)?.cursor?.index, 1)
})

test('a lone client stays connected for over 60 s without reconnecting', { timeout: 120000 }, async () => {
  const room = roomName('aw-lone')
  const lone = await syncedClient(server, room, { user: { name: 'lonely' } })
  const start = Date.now()
  assert.equal(lone.connections.count, 1)
  // no peer to talk to: only the server's echo of its own awareness renewal (every 15 s) keeps
  // y-websocket's 30 s "no message received" watchdog from closing the connection
  await never(() => !lone.provider.wsconnected || lone.connections.count !== 1, 65000,
    () => `the lone client's connection dropped or was reopened (connections: ${lone.connections.count}, closes: ${JSON.stringify(lone.closes)})`)
  assert.ok(Date.now() - start >= 65000)
  assert.equal(lone.connections.count, 1, 'exactly one connection was ever made')
  assert.deepEqual(lone.statuses.map((s) => s.status), ['connecting', 'connected'])
  assert.deepEqual(lone.closes, [])
  // and it still works
  const other = await syncedClient(server, room)
  lone.text.insert(0, 'still here')
  await waitFor(() => other.text.toString() === 'still here', 5000, 'edit after a minute alone')
})

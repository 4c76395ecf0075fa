// Abuse limits through `ylambda dev`: one connection flooding is closed (1008, told why) while
// other rooms are served; API Gateway's route throttling as emulated (429 at $connect, a
// "Too Many Requests" frame for a message, the connection kept); connections per room.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, cleanup, rawClient, syncedClient, waitFor, never, roomName, syncStep1,
  describeMessage, Y, patience
} from '../lib/helpers.js'

after(cleanup)

test('a flooding connection is closed and told why; other rooms keep being served', async (t) => {
  // Throttling out of the way: this is the server's own per-connection limit. It must be below
  // what the backend can count: on a slow one (single-threaded moto as the DynamoDB doc store,
  // one rate-counter write and a few reads per message, ~25 messages/s through the Lambda
  // processes) a flood of 20/s is barely reachable, so the limit is lowered with the patience.
  const server = await startServer({
    env: {
      YLAMBDA_MAX_MESSAGES_PER_SEC: String(Math.max(2, Math.floor(20 / patience))),
      YLAMBDA_THROTTLE_MESSAGE_RATE: '1000000',
      YLAMBDA_THROTTLE_MESSAGE_BURST: '1000000'
    }
  })
  const rooms = [roomName('calm'), roomName('calm'), roomName('calm')]
  const pairs = []
  for (const room of rooms) pairs.push([await syncedClient(server, room), await syncedClient(server, room)])
  const flood = await rawClient(server, `?room=${roomName('flood')}`)
  const doc = new Y.Doc()
  const frame = syncStep1(doc)
  let sent = 0
  const pump = setInterval(() => { for (let i = 0; i < 50 && !flood.closeInfo; i++, sent++) flood.sendMessage(frame) }, 1)
  try {
    // Meanwhile every calm pair keeps editing, and every edit arrives.
    for (let round = 0; round < 5; round++) {
      for (const [a] of pairs) a.text.insert(a.text.length, `<${round}>`)
      for (const [, b] of pairs) await waitFor(() => b.text.toString().includes(`<${round}>`), 10000, `calm room delivery ${round}`)
    }
    const closed = await Promise.race([flood.closed, new Promise((resolve) => setTimeout(() => resolve(null), 15000 * patience))])
    assert.ok(closed, 'the flooding connection was closed')
    assert.equal(closed.code, 1008)
    const told = flood.decoded().map(describeMessage).filter((m) => m.type === 'auth')
    assert.ok(told.some((m) => /messages in 10 s/.test(m.reason)), `told why: ${JSON.stringify(told)}`)
    t.diagnostic(`flooder sent ${sent} frames before its close`)
  } finally {
    clearInterval(pump)
  }
})

test('API Gateway throttling: 429 past the $connect burst; a throttled message gets "Too Many Requests" and the connection stays', async () => {
  const server = await startServer({
    env: {
      YLAMBDA_THROTTLE_CONNECT_RATE: '1',
      YLAMBDA_THROTTLE_CONNECT_BURST: '3',
      YLAMBDA_THROTTLE_MESSAGE_RATE: '1',
      YLAMBDA_THROTTLE_MESSAGE_BURST: '5'
    }
  })
  const room = roomName('throttle')
  const raw = await rawClient(server, `?room=${room}`)
  const doc = new Y.Doc()
  const started = Date.now()
  for (let i = 0; i < 20; i++) raw.sendMessage(syncStep1(doc))
  // Every message is either routed (its sync step 1 earns a sync step 2) or throttled. The
  // gateway routes one connection's messages in order, so on a slow machine the bucket refills
  // (1 a second) while earlier ones run: count what passed against what the bucket allowed.
  const throttledFrames = () => raw.json().filter((m) => m.message === 'Too Many Requests')
  const answered = () => raw.texts.filter((t) => !t.startsWith('{')).map((t) => describeMessage(new Uint8Array(Buffer.from(t, 'base64'))))
    .filter((m) => m.type === 'sync' && m.syncType === 1).length
  await waitFor(() => throttledFrames().length + answered() === 20, 20000, 'every message routed or throttled')
  const elapsedSeconds = (Date.now() - started) / 1000
  const throttled = throttledFrames()
  assert.ok(throttled.length >= 1, 'some were throttled')
  assert.ok(20 - throttled.length <= 5 + Math.ceil(elapsedSeconds),
    `no more passed than the burst of 5 plus 1 a second (${20 - throttled.length} in ${elapsedSeconds} s)`)
  assert.equal(throttled[0].connectionId.length > 0, true)
  assert.ok(throttled[0].requestId, 'names the request')
  await never(() => raw.closeInfo, 1000, 'a throttled connection was closed')
  // The connect bucket had 3: this test's first connection took one.
  const outcomes = []
  for (let i = 0; i < 4; i++) {
    outcomes.push(await rawClient(server, `?room=${room}`).then((c) => { c.ws.close(); return 'open' }, (e) => String(e.message)))
  }
  assert.ok(outcomes.some((o) => /429/.test(o)), `a $connect past the burst is refused with 429: ${outcomes}`)
})

test('a full room refuses the next connection (403); another room still opens', async () => {
  const server = await startServer({ env: { YLAMBDA_MAX_CONNECTIONS_PER_ROOM: '2' } })
  const room = roomName('full')
  await rawClient(server, `?room=${room}`)
  await rawClient(server, `?room=${room}`)
  await assert.rejects(rawClient(server, `?room=${room}`), /403/)
  const other = await rawClient(server, `?room=${roomName('other')}`)
  assert.equal(other.closeInfo, null)
})

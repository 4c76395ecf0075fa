// y-webrtc signaling: JSON text frames exactly as y-webrtc 10.3 (lib0/websocket) sends them, on a
// connection with no room parameter.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, cleanup, rawClient, waitFor, never, roomName, syncedClient } from '../lib/helpers.js'

let server
before(async () => { server = await startServer() })
after(cleanup)

const signaling = () => rawClient(server, '')
const publishes = (c, topic) => c.json().filter((m) => m.type === 'publish' && m.topic === topic)

/** Pings and waits for the pong: every earlier message of this connection has been handled. */
const roundTrip = async (c) => {
  const before = c.json().filter((m) => m.type === 'pong').length
  c.sendJson({ type: 'ping' })
  await waitFor(() => c.json().filter((m) => m.type === 'pong').length > before, 5000, 'pong')
}

/**
 * Publishes from `from` (again every 300 ms, with a fresh sequence number) until `check` holds:
 * a publish may legitimately race a subscription made on another connection.
 */
const publishUntil = async (from, topic, check, what) => {
  let seq = 0
  const send = () => from.sendJson({ type: 'publish', topic, data: { type: 'announce', from: 'peer-' + from.id, seq: seq++ } })
  send()
  const timer = setInterval(send, 300)
  try {
    return await waitFor(check, 10000, what)
  } finally {
    clearInterval(timer)
  }
}

let ids = 0
const named = async () => { const c = await signaling(); c.id = ++ids; return c }

test('ping gets pong', async () => {
  const c = await named()
  c.sendJson({ type: 'ping' })
  await waitFor(() => c.json().some((m) => m.type === 'pong'), 5000, 'pong')
  assert.deepEqual(c.json().find((m) => m.type === 'pong'), { type: 'pong' })
})

test('subscribers of a topic get each other\'s publishes and their own, with clients = subscriber count', async () => {
  const topic = roomName('topic')
  const a = await named()
  const b = await named()
  a.sendJson({ type: 'subscribe', topics: [topic] })
  b.sendJson({ type: 'subscribe', topics: [topic] })
  await roundTrip(a)
  await roundTrip(b)
  const data = { type: 'signal', from: 'peer-a', to: 'peer-b', token: 0.5, signal: { type: 'offer', sdp: 'v=0\r\n…' } }
  a.sendJson({ type: 'publish', topic, data })
  const expected = { type: 'publish', topic, data, clients: 2 }
  await waitFor(() => publishes(b, topic).length === 1 && publishes(a, topic).length === 1, 5000, 'both subscribers got the publish')
  assert.deepEqual(publishes(b, topic)[0], expected, 'the receiver gets the message with clients = 2')
  assert.deepEqual(publishes(a, topic)[0], expected, 'the sender gets its own message too')
  b.sendJson({ type: 'publish', topic, data: { type: 'announce', from: 'peer-b' } })
  await waitFor(() => publishes(a, topic).length === 2 && publishes(b, topic).length === 2, 5000, 'publish from b')
  assert.equal(publishes(a, topic)[1].clients, 2)
  assert.deepEqual(publishes(a, topic)[1].data, { type: 'announce', from: 'peer-b' })
  // a third, unsubscribed connection hears nothing
  const c = await named()
  await never(() => c.texts.length > 0, 500, 'unsubscribed connection received a publish')
})

test('several topics in one subscribe; a disconnected subscriber leaves all its topics', async () => {
  const t1 = roomName('t1')
  const t2 = roomName('t2')
  const a = await named()
  const b = await named()
  const leaver = await named()
  a.sendJson({ type: 'subscribe', topics: [t1] })
  b.sendJson({ type: 'subscribe', topics: [t2] })
  leaver.sendJson({ type: 'subscribe', topics: [t1, t2] })
  await publishUntil(a, t1, () => publishes(leaver, t1).some((m) => m.clients === 2), 'leaver subscribed to t1 (clients 2)')
  await publishUntil(b, t2, () => publishes(leaver, t2).some((m) => m.clients === 2), 'leaver subscribed to t2 (clients 2)')
  leaver.ws.close()
  await leaver.closed
  await publishUntil(a, t1, () => publishes(a, t1).some((m) => m.clients === 1), 'clients on t1 drops to 1 after the leaver disconnected')
  await publishUntil(b, t2, () => publishes(b, t2).some((m) => m.clients === 1), 'clients on t2 drops to 1 after the leaver disconnected')
})

test('a subscriber that vanishes without a close frame is removed too', async () => {
  const topic = roomName('crash')
  const a = await named()
  const gone = await named()
  a.sendJson({ type: 'subscribe', topics: [topic] })
  gone.sendJson({ type: 'subscribe', topics: [topic] })
  await publishUntil(a, topic, () => publishes(gone, topic).some((m) => m.clients === 2), 'both subscribed')
  gone.ws.terminate()
  await publishUntil(a, topic, () => publishes(a, topic).some((m) => m.clients === 1), 'clients drops to 1')
})

test('unsubscribe works', async () => {
  const topic = roomName('unsub')
  const a = await named()
  const b = await named()
  a.sendJson({ type: 'subscribe', topics: [topic] })
  b.sendJson({ type: 'subscribe', topics: [topic] })
  await publishUntil(a, topic, () => publishes(b, topic).some((m) => m.clients === 2), 'both subscribed')
  a.sendJson({ type: 'unsubscribe', topics: [topic] })
  await roundTrip(a)
  const before = publishes(a, topic).length
  b.sendJson({ type: 'publish', topic, data: { type: 'announce', from: 'peer-b', after: 'unsubscribe' } })
  await waitFor(() => publishes(b, topic).some((m) => m.data.after === 'unsubscribe'), 5000, 'b gets its own publish')
  assert.equal(publishes(b, topic).find((m) => m.data.after === 'unsubscribe').clients, 1, 'clients counts only b')
  await never(() => publishes(a, topic).length > before, 1000, 'unsubscribed a still receives the topic')
})

test('publish to a topic with no subscribers is harmless', async () => {
  const a = await named()
  a.sendJson({ type: 'publish', topic: roomName('nobody'), data: { type: 'announce', from: 'x' } })
  a.sendJson({ type: 'publish', topic: roomName('nobody'), data: 'string data' })
  await roundTrip(a)
  assert.equal(a.json().filter((m) => m.type === 'publish').length, 0)
  assert.equal(a.closeInfo, null)
})

test('bad JSON and odd messages do not kill the server', async () => {
  const bad = await named()
  bad.ws.send('{not json')
  bad.ws.send('[]')
  bad.ws.send('null')
  bad.ws.send(JSON.stringify({ type: 'subscribe', topics: 'not-an-array' }))
  bad.ws.send(JSON.stringify({ type: 'subscribe', topics: [1, null, { a: 1 }] }))
  bad.ws.send(JSON.stringify({ type: 'publish' }))
  bad.ws.send(JSON.stringify({ type: 'no-such-type' }))
  // whether the server keeps or closes this connection is its choice; it must stay up for others
  const other = await named()
  await roundTrip(other)
  const topic = roomName('after-bad')
  other.sendJson({ type: 'subscribe', topics: [topic] })
  await publishUntil(other, topic, () => publishes(other, topic).some((m) => m.clients === 1), 'signaling still works')
  assert.ok(server.alive())
})

test('signaling topics and document rooms with the same name do not mix', async () => {
  const name = roomName('same-name')
  const doc = await syncedClient(server, name)
  const sig = await named()
  sig.sendJson({ type: 'subscribe', topics: [name] })
  await publishUntil(sig, name, () => publishes(sig, name).length > 0, 'self publish')
  assert.equal(publishes(sig, name).at(-1).clients, 1, 'the document connection is not a subscriber')
  await never(() => doc.text.length > 0, 500, 'signaling leaked into the document')
  assert.ok(doc.provider.wsconnected)
})

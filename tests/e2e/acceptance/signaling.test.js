// Acceptance: y-webrtc signaling on a deployed stage (YLAMBDA_URL; see lib.js): JSON text frames
// exactly as y-webrtc 10.3 sends them, on the stage URL itself (no room parameter; with access
// control, the rw token in ?token=, its room patterns covering the topic).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { raw, roomName, waitFor, never, cleanup, T } from './lib.js'

after(cleanup)

const publishes = (c, topic) => c.json().filter((m) => m.type === 'publish' && m.topic === topic)

test('y-webrtc signaling: ping/pong, and a publish reaches both subscribers of a topic (clients: 2)', async () => {
  const topic = roomName('signal')
  const a = await raw()
  const b = await raw()
  const outsider = await raw()
  a.sendJson({ type: 'ping' })
  await waitFor(() => a.json().some((m) => m.type === 'pong'), T.relay, 'pong')
  assert.deepEqual(a.json().find((m) => m.type === 'pong'), { type: 'pong' })
  a.sendJson({ type: 'subscribe', topics: [topic] })
  b.sendJson({ type: 'subscribe', topics: [topic] })
  // each message of a connection may be handled by another Lambda invocation, so a publish can
  // overtake a subscribe: announce (as y-webrtc does) until both subscriptions count
  let seq = 0
  const announce = () => a.sendJson({ type: 'publish', topic, data: { type: 'announce', from: 'peer-a', seq: seq++ } })
  announce()
  const timer = setInterval(announce, 500)
  try {
    await waitFor(() => publishes(b, topic).some((m) => m.clients === 2), T.relay,
      () => `b receives a's announce with clients 2 (b got ${JSON.stringify(b.texts.slice(-3))})`)
  } finally {
    clearInterval(timer)
  }
  const data = { type: 'signal', from: 'peer-b', to: 'peer-a', token: 0.5, signal: { type: 'offer', sdp: 'v=0\r\n…' } }
  b.sendJson({ type: 'publish', topic, data })
  const expected = { type: 'publish', topic, data, clients: 2 }
  const signals = (c) => publishes(c, topic).filter((m) => m.data?.type === 'signal')
  await waitFor(() => signals(a).length === 1 && signals(b).length === 1, T.relay, 'both subscribers got b\'s signal')
  assert.deepEqual(signals(a)[0], expected, 'the other subscriber gets it intact')
  assert.deepEqual(signals(b)[0], expected, 'the sender gets its own publish too')
  await never(() => outsider.texts.length > 0, T.quiet, 'a connection that did not subscribe received something')
})

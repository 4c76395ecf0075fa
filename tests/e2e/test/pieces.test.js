// Messages larger than one frame from a client that sends every message as one frame (Node's
// built-in WebSocket, like a browser): the adapter sends them as numbered pieces that each fit
// API Gateway's 32 KB frame, and the server reassembles them (ARCHITECTURE.md, "Messages in
// pieces"). ylambda dev enforces API Gateway's frame and message limits throughout.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, cleanup, makeClient, synced, syncedClient, rawClient, waitFor, never, roomName, mixedText, Y
} from '../lib/helpers.js'

let server
before(async () => { server = await startServer() })
after(cleanup)

test('a 1 MB paste of mixed text from a one-frame-per-message WebSocket reaches a peer and a fresh client', async (t) => {
  const room = roomName('paste-1mb')
  const a = await syncedClient(server, room, { socket: 'builtin' })
  const b = await syncedClient(server, room)
  const paste = mixedText(1024 * 1024)
  a.text.insert(0, paste)
  await waitFor(() => b.text.length === paste.length, 60000,
    () => `b has the paste (b has ${b.text.length} of ${paste.length} chars; a's closes: ${JSON.stringify(a.closes)})`)
  assert.equal(b.text.toString(), paste)
  const fresh = await syncedClient(server, room, { socket: 'builtin' })
  await waitFor(() => fresh.text.length === paste.length, 60000, 'a fresh client gets the paste')
  assert.equal(fresh.text.toString(), paste)
  t.diagnostic(`update ${Y.encodeStateAsUpdate(a.doc).length} bytes`)
  assert.equal(a.connections.count, 1, `the sender was never disconnected: ${JSON.stringify(a.closes)}`)
  assert.deepEqual(a.closes, [])
})

test('a 5 MB document built offline syncs when its one-frame-per-message client connects', async (t) => {
  const room = roomName('offline-5mb')
  const doc = new Y.Doc()
  const text = doc.getText('text')
  const content = mixedText(5 * 1024 * 1024)
  // Typed in paragraphs, as an offline editor would have it: many items, one client.
  for (let at = 0; at < content.length; at += 4096) text.insert(at, content.slice(at, at + 4096))
  t.diagnostic(`offline state ${Y.encodeStateAsUpdate(doc).length} bytes`)
  const writer = makeClient(server, room, { doc, socket: 'builtin' })
  await synced(writer, 60000)
  const fresh = await syncedClient(server, room, { socket: 'builtin' })
  await waitFor(() => fresh.text.length === content.length, 120000,
    () => `a fresh client gets the whole document (has ${fresh.text.length} of ${content.length} chars; writer's closes: ${JSON.stringify(writer.closes)})`)
  assert.equal(fresh.text.toString(), content)
  assert.equal(writer.connections.count, 1, `the writer was never disconnected: ${JSON.stringify(writer.closes)}`)
})

test('malformed or forged pieces close the connection; a flood of unfinished messages is bounded', async () => {
  const room = roomName('bad-pieces')
  const watcher = await syncedClient(server, room)
  for (const bad of ['~1:x', '~9:m:0:2:AAAA', '~1:m:5:2:AAAA', '~1:m:0:100000:AAAA']) {
    const raw = await rawClient(server, `?room=${encodeURIComponent(room)}`)
    raw.ws.send(bad)
    await waitFor(() => raw.closeInfo, 10000, `the server closed the connection after ${bad}`)
  }
  // Never-completed messages: the default allows 4 at once; the fifth closes the connection.
  const flood = await rawClient(server, `?room=${encodeURIComponent(room)}`)
  for (let i = 0; i < 5; i++) flood.ws.send(`~1:flood${i}:0:2:AAAA`)
  await waitFor(() => flood.closeInfo, 10000, 'the flooding connection was closed')
  assert.equal(watcher.text.toString(), '', 'nothing was applied')
  assert.equal(watcher.connections.count, 1)
})

test('a message over the server limit is refused with a reason, and the client backs off instead of looping', async (t) => {
  const small = await startServer({ env: { YLAMBDA_MAX_ASSEMBLED_BYTES: '100000' } })
  const room = roomName('over-limit')
  const a = makeClient(small, room, { socket: 'builtin', maxBackoffTime: 100 })
  const refusals = []
  a.provider.on('connection-error', (event) => { if (event && event.refused) refusals.push(event.message) })
  await synced(a)
  const b = await syncedClient(small, room)
  a.text.insert(0, mixedText(300 * 1024))
  await waitFor(() => refusals.length > 0, 10000, 'the client heard why its message was refused')
  t.diagnostic(refusals[0])
  assert.match(refusals[0], /YLAMBDA_MAX_ASSEMBLED_BYTES/)
  // y-websocket alone would reconnect every 100 ms here (~70 times in 7 s) and resend the same
  // message; the adapter waits 2 s, then 4 s, ... after each refusal (at most 3 sockets made).
  const started = a.connections.count
  await never(() => a.connections.count - started > 4, 7000,
    () => `${a.connections.count - started} reconnects within 7 s of the first refusal: the client loops`)
  t.diagnostic(`${a.connections.count - started} reconnects in 7 s after the first refusal`)
  assert.equal(b.text.length, 0, 'nothing of the refused message was applied')
})

// Documents larger than one message (API Gateway: 128 KB per frame): the server's answer to a
// sync step 1 must be cut into frames under YLAMBDA_MAX_MESSAGE_BYTES.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, cleanup, syncedClient, rawClient, waitFor, roomName, Y, syncStep1, applyReceived
} from '../lib/helpers.js'

const LIMIT = 131072
let server
before(async () => { server = await startServer() })
after(cleanup)

/** A raw client that asks for the whole document; returns the frames and the rebuilt doc. */
const fetchWhole = async (room, expected) => {
  const raw = await rawClient(server, `?room=${encodeURIComponent(room)}`)
  raw.sendMessage(syncStep1(new Y.Doc()))
  const doc = new Y.Doc()
  await waitFor(() => {
    applyReceived(raw, doc)
    return doc.getText('text').toString() === expected
  }, 20000, () => `raw client rebuilt the document from ${raw.texts.length} frames (${raw.texts.map((t) => t.length).join(', ')} chars); closed: ${JSON.stringify(raw.closeInfo)}`)
  return raw.texts
}

const check = async (t, room, writer) => {
  const expected = writer.text.toString()
  const sizes = (await fetchWhole(room, expected)).map((f) => f.length)
  t.diagnostic(`${expected.length} chars; update ${Y.encodeStateAsUpdate(writer.doc).length} bytes; server frames: ${sizes.join(', ')}`)
  assert.ok(sizes.every((n) => n <= LIMIT), `every frame within ${LIMIT} bytes: ${sizes.join(', ')}`)
  const fresh = await syncedClient(server, room)
  await waitFor(() => fresh.text.toString() === expected, 20000,
    () => `a fresh provider gets all ${expected.length} chars (has ${fresh.text.length})`)
}

test('a 60 KB paste from a provider goes through (the adapter sends it in 32 KB frames)', async () => {
  const room = roomName('paste')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  const paste = 'paste '.repeat(10 * 1024) // 60 KB: one update of ~60 KB, 80 KB as base64
  a.text.insert(0, paste)
  await waitFor(() => b.text.toString() === paste, 10000,
    () => `b has the paste (b has ${b.text.length} chars; a closes: ${JSON.stringify(a.closes)})`)
  assert.equal(a.connections.count, 1, 'the sender was not disconnected')
})

test('a 300 KB document of many separate paragraphs reaches a new client in frames under the limit', async (t) => {
  const room = roomName('large-paragraphs')
  const writers = [await syncedClient(server, room), await syncedClient(server, room)]
  for (let i = 0; i < 300; i++) {
    const w = writers[i % 2]
    const s = w.text.toString()
    const at = Math.floor(Math.random() * (s.split('\n').length)) // paragraph boundary
    const pos = at === 0 ? 0 : s.split('\n').slice(0, at).join('\n').length + 1
    w.text.insert(pos, `${String(i).padStart(4, '0')}${'p'.repeat(1019)}\n`)
  }
  await waitFor(() => writers[0].text.toString() === writers[1].text.toString(), 20000, 'writers converge')
  await check(t, room, writers[0])
})

test('a 300 KB document typed in one stretch (a few huge merged items) reaches a new client', async (t) => {
  const room = roomName('large-typed')
  const writer = await syncedClient(server, room)
  for (let i = 0; i < 300; i++) writer.text.insert(writer.text.length, `${String(i).padStart(4, '0')}${'t'.repeat(1020)}`)
  const observer = await syncedClient(server, room)
  await waitFor(() => observer.text.length === writer.text.length, 20000, 'relayed as typed')
  await check(t, room, writer)
})

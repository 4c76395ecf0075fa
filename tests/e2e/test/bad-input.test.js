// Bad input on a document connection: the offender is closed, the server and the document are not hurt.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, cleanup, syncedClient, rawClient, waitFor, roomName, Y,
  syncUpdate, encoding, syncProtocol
} from '../lib/helpers.js'

let server
let room
let healthy
let baseline
let baselineSv

before(async () => {
  server = await startServer()
  room = roomName('bad input')
  healthy = await syncedClient(server, room)
  healthy.text.insert(0, 'healthy content')
  const peer = await syncedClient(server, room)
  await waitFor(() => peer.text.toString() === 'healthy content', 10000, 'baseline content stored')
  peer.destroy()
  baseline = healthy.text.toString()
  baselineSv = Y.encodeStateVector(healthy.doc)
})
after(cleanup)

/** A valid sync update from a stranger that would insert `s`. */
const validUpdate = (s) => {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, s)
  return syncUpdate(Y.encodeStateAsUpdate(doc))
}

const syncMessage = (syncType, payload) => {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint(e, syncType)
  encoding.writeVarUint8Array(e, payload)
  return encoding.toUint8Array(e)
}

/**
 * Connects a raw client to the room, lets `misbehave` send something bad, and checks: the raw
 * connection is closed (with `expectCode` if given), the server is up, the healthy provider was
 * not disturbed, the document is unchanged for it and for a new client, and the room still works.
 */
const checkBadInput = async (t, misbehave, { expectCode } = {}) => {
  const raw = await rawClient(server, `?room=${encodeURIComponent(room)}`)
  misbehave(raw)
  await waitFor(() => raw.closeInfo, 10000, 'the server closed the offending connection')
  t.diagnostic(`closed with ${raw.closeInfo.code} ${JSON.stringify(raw.closeInfo.reason)}`)
  if (expectCode !== undefined) assert.equal(raw.closeInfo.code, expectCode, 'close code')
  assert.ok(server.alive(), 'server still running')
  assert.ok(healthy.provider.wsconnected, 'healthy provider still connected')
  assert.equal(healthy.connections.count, 1, 'healthy provider never had to reconnect')
  const fresh = await syncedClient(server, room)
  assert.equal(fresh.text.toString(), baseline, 'document unchanged for a new client')
  assert.deepEqual(Y.encodeStateVector(fresh.doc), baselineSv, 'no foreign structs in the document')
  assert.equal(healthy.text.toString(), baseline, 'document unchanged for the healthy provider')
  // the room still relays
  const mark = `[ok-${Math.random().toString(36).slice(2, 7)}]`
  healthy.text.insert(healthy.text.length, mark)
  await waitFor(() => fresh.text.toString().endsWith(mark), 10000, 'room still relays edits')
  healthy.text.delete(healthy.text.length - mark.length, mark.length)
  await waitFor(() => fresh.text.toString() === baseline, 10000, 'and deletions')
  fresh.destroy()
  baselineSv = Y.encodeStateVector(healthy.doc)
}

test('garbage base64 (bytes that are no y-websocket message: a varint that never ends)', async (t) => {
  await checkBadInput(t, (raw) => raw.sendMessage(new Uint8Array(16).fill(0xff)))
})

test('text that is not base64', async (t) => {
  await checkBadInput(t, (raw) => raw.ws.send('this is *not* base64 {"type":"publish"}'))
})

test('a truncated varint (sync update whose length prefix is cut off)', async (t) => {
  await checkBadInput(t, (raw) => raw.sendMessage(new Uint8Array([0x00, 0x02, 0xd0])))
})

test('a sync update whose length prefix promises more bytes than there are', async (t) => {
  await checkBadInput(t, (raw) => raw.sendMessage(new Uint8Array([0x00, 0x02, 0x7f, 0x01, 0x01])))
})

test('a sync update whose payload is not a valid Yjs update', async (t) => {
  // 1 client, 5 structs, client 7, clock 0, then a string item whose origin id is missing
  await checkBadInput(t, (raw) => raw.sendMessage(syncMessage(syncProtocol.messageYjsUpdate, new Uint8Array([1, 5, 7, 0, 0x84]))))
})

test('a sync step 2 whose payload is not a valid Yjs update', async (t) => {
  await checkBadInput(t, (raw) => raw.sendMessage(syncMessage(syncProtocol.messageYjsSyncStep2, new Uint8Array([3, 0xff, 0xff, 0xff, 0xff, 0x0f, 9]))))
})

test('a binary frame is refused with 1003 (and its valid update is not applied)', async (t) => {
  await checkBadInput(t, (raw) => raw.ws.send(Buffer.from(validUpdate('BINARY FRAME'))), { expectCode: 1003 })
})

test('a message over YLAMBDA_MAX_MESSAGE_BYTES (131072), in 32 KB frames, is refused with 1009 (and not applied)', async (t) => {
  const big = validUpdate('x'.repeat(110 * 1024))
  const text = Buffer.from(big).toString('base64')
  assert.ok(text.length > 131072)
  await checkBadInput(t, (raw) => raw.sendFragmented(text), { expectCode: 1009 })
})

test('a single frame over 32 KB is refused with 1009 (API Gateway frame limit), even for a message under 128 KB', async (t) => {
  const text = Buffer.from(validUpdate('f'.repeat(30 * 1024))).toString('base64')
  assert.ok(text.length > 32768 && text.length < 131072)
  await checkBadInput(t, (raw) => raw.ws.send(text), { expectCode: 1009 })
})

test('a message just under the limit, in 32 KB frames, is accepted', async () => {
  // the limit is not off by a lot: ~90 KB of Yjs data (~120 KB base64) goes through
  const raw = await rawClient(server, `?room=${encodeURIComponent(room)}`)
  const doc = new Y.Doc()
  doc.getText('other').insert(0, 'y'.repeat(90 * 1024))
  const text = Buffer.from(syncUpdate(Y.encodeStateAsUpdate(doc))).toString('base64')
  assert.ok(text.length < 131072 && text.length > 120000)
  raw.sendFragmented(text)
  await waitFor(() => healthy.doc.getText('other').length === 90 * 1024, 10000,
    () => `large but allowed update relayed (raw connection closed: ${JSON.stringify(raw.closeInfo)})`)
  assert.equal(raw.closeInfo, null)
  assert.equal(healthy.text.toString(), baseline)
  baselineSv = Y.encodeStateVector(healthy.doc)
})

// Document sync through ylambda dev with unmodified y-websocket providers and the adapter.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, cleanup, syncedClient, makeClient, synced, waitFor, never, roomName, rawClient, syncUpdate, Y } from '../lib/helpers.js'

let server
before(async () => { server = await startServer() })
after(cleanup)

test('two providers converge on concurrent edits; a third joining later gets the full state', async () => {
  const room = roomName('converge')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  // concurrent: both edit before seeing each other's changes. Inserts go to random positions
  // between whole markers (after a ';'), so every marker stays one contiguous string.
  const insertRandom = (text, marker) => {
    const s = text.toString()
    const at = [0]
    for (let i = 0; i < s.length; i++) if (s[i] === ';') at.push(i + 1)
    text.insert(at[Math.floor(Math.random() * at.length)], marker)
  }
  a.text.insert(0, 'alpha;')
  b.text.insert(0, 'beta;')
  for (let i = 0; i < 20; i++) {
    insertRandom(a.text, `a${i};`)
    insertRandom(b.text, `b${i};`)
  }
  a.text.delete(a.text.toString().indexOf('alpha;'), 'alpha;'.length)
  await waitFor(() => a.text.toString() === b.text.toString() &&
    a.text.toString().includes('beta;') && b.text.toString().includes('a19;') && !b.text.toString().includes('alpha'), 10000,
  () => `a and b converge; a=${JSON.stringify(a.text.toString())} b=${JSON.stringify(b.text.toString())}`)
  const content = a.text.toString()
  for (let i = 0; i < 20; i++) {
    assert.equal(content.split(`a${i};`).length, 2, `a${i}; exactly once`)
    assert.equal(content.split(`b${i};`).length, 2, `b${i}; exactly once`)
  }
  const markers = ['beta;']
  for (let i = 0; i < 20; i++) markers.push(`a${i};`, `b${i};`)
  assert.equal(content.length, markers.join('').length, 'nothing but the markers')
  // a third provider joins later: gets the full state
  const c = await syncedClient(server, room)
  await waitFor(() => c.text.toString() === content, 10000,
    () => `late joiner has the full state; got ${JSON.stringify(c.text.toString())}`)
  assert.deepEqual(Y.encodeStateVector(c.doc), Y.encodeStateVector(a.doc))
  // and its edits reach the others
  c.text.insert(0, 'gamma ')
  await waitFor(() => a.text.toString().startsWith('gamma ') && b.text.toString().startsWith('gamma '), 10000, 'c\'s edit reaches a and b')
})

test('a value set under a map key while its writer overwrote it twice reaches the room, and a late joiner reads it', async () => {
  // Offline, x sets "k" three times and y, having seen only the first, sets it once: x's state
  // holds its old values as one deleted struct of 3 units, and y's value names the first of them.
  const x = new Y.Doc()
  x.clientID = 1
  const y = new Y.Doc()
  y.clientID = 2
  x.getMap('m').set('k', 1)
  Y.applyUpdate(y, Y.encodeStateAsUpdate(x))
  x.getMap('m').set('k', 2)
  x.getMap('m').set('k', 3)
  y.getMap('m').set('k', 'b')
  Y.applyUpdate(x, Y.encodeStateAsUpdate(y))
  assert.equal(x.getMap('m').get('k'), 'b')
  const room = roomName('map-sets')
  await syncedClient(server, room, { doc: x })
  const late = await syncedClient(server, room)
  await waitFor(() => late.doc.getMap('m').get('k') === 'b', 10000,
    () => `the late joiner reads "b"; got ${JSON.stringify(late.doc.getMap('m').toJSON())}`)
  assert.deepEqual(Y.encodeStateVector(late.doc), Y.encodeStateVector(x))
})

test('a late joiner gets the state of a room whose writers already left', async () => {
  const room = roomName('left')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  a.text.insert(0, 'written and gone')
  await waitFor(() => b.text.toString() === 'written and gone', 10000, 'b sees a\'s edit')
  a.destroy()
  b.destroy()
  const c = await syncedClient(server, room)
  await waitFor(() => c.text.toString() === 'written and gone', 10000,
    () => `new client sees the content; got ${JSON.stringify(c.text.toString())}`)
})

test('rooms are isolated', async () => {
  const roomA = roomName('iso-a')
  const roomB = roomName('iso-b')
  const a1 = await syncedClient(server, roomA)
  const a2 = await syncedClient(server, roomA)
  const b1 = await syncedClient(server, roomB)
  const b2 = await syncedClient(server, roomB)
  a1.text.insert(0, 'only in A')
  b1.text.insert(0, 'only in B')
  await waitFor(() => a2.text.toString() === 'only in A', 10000, 'edit reaches the other client of room A')
  await waitFor(() => b2.text.toString() === 'only in B', 10000, 'edit reaches the other client of room B')
  await never(() => b1.text.toString().includes('A') || b2.text.toString().includes('A') ||
    a1.text.toString().includes('B') || a2.text.toString().includes('B'), 1500, 'an edit crossed rooms')
  // a fresh client of room B sees B's content only
  const b3 = await syncedClient(server, roomB)
  await waitFor(() => b3.text.toString() === 'only in B', 10000, 'fresh client of room B')
  // a room name that is a prefix of another is still a different room
  const prefix = await syncedClient(server, roomA.slice(0, -1))
  await never(() => prefix.text.length > 0, 1000, 'a prefix room received content')
})

test('room names with spaces and unicode work and stay distinct', async () => {
  const base = roomName('uni')
  const r1 = `${base} café 日本`
  const r2 = `${base} cafe 日本`
  const a = await syncedClient(server, r1)
  const b = await syncedClient(server, r1)
  const c = await syncedClient(server, r2)
  a.text.insert(0, 'unicode room')
  await waitFor(() => b.text.toString() === 'unicode room', 10000, 'unicode room syncs')
  await never(() => c.text.length > 0, 1000, 'similar-looking room received the edit')
})

test('read-only provider (params {readonly: "1"}) receives the document but its edits do not reach peers', async () => {
  const room = roomName('readonly')
  const writer = await syncedClient(server, room)
  writer.text.insert(0, 'from writer')
  // the reader has local content before it connects: its sync step 2 must be dropped as well
  const readerDoc = new Y.Doc()
  readerDoc.getText('text').insert(0, 'reader-offline ')
  const reader = makeClient(server, room, { params: { readonly: '1' }, doc: readerDoc })
  await synced(reader)
  await waitFor(() => reader.text.toString().includes('from writer'), 10000, 'reader receives the document')
  reader.text.insert(0, 'reader-online ')
  writer.text.insert(writer.text.length, ' w2')
  await waitFor(() => reader.text.toString().includes(' w2'), 10000, 'reader keeps receiving updates')
  await never(() => writer.text.toString().includes('reader'), 2000,
    `reader's edits reached the writer: ${JSON.stringify(writer.text.toString())}`)
  const fresh = await syncedClient(server, room)
  await waitFor(() => fresh.text.toString().includes(' w2'), 10000, 'fresh client synced')
  assert.equal(fresh.text.toString(), 'from writer w2')
  assert.ok(reader.provider.wsconnected, 'the read-only connection stays usable')
})

test('the doc= query parameter is an alias of room=', async () => {
  const room = roomName('alias')
  const provider = await syncedClient(server, room)
  const raw = await rawClient(server, `?doc=${encodeURIComponent(room)}`)
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'via doc=')
  raw.sendMessage(syncUpdate(Y.encodeStateAsUpdate(doc)))
  await waitFor(() => provider.text.toString() === 'via doc=', 10000, 'update sent on a ?doc= connection reaches the room')
})

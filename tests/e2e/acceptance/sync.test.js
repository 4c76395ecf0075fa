// Acceptance: document sync on a deployed stage (YLAMBDA_URL; see lib.js), with y-websocket
// providers through ylambda-client.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { describeMessage, syncStep1 } from '../lib/helpers.js'
import { syncedProvider, raw, roomName, waitFor, cleanup, T, Y } from './lib.js'

after(cleanup)

test('two providers in one room converge on concurrent text edits', async () => {
  const room = roomName('converge')
  const a = await syncedProvider(room)
  const b = await syncedProvider(room)
  // both edit before seeing each other's changes; inserts go between whole markers
  const insertRandom = (text, marker) => {
    const s = text.toString()
    const at = [0]
    for (let i = 0; i < s.length; i++) if (s[i] === ';') at.push(i + 1)
    text.insert(at[Math.floor(Math.random() * at.length)], marker)
  }
  const markers = []
  for (let i = 0; i < 10; i++) {
    insertRandom(a.text, `a${i};`)
    insertRandom(b.text, `b${i};`)
    markers.push(`a${i};`, `b${i};`)
  }
  a.text.delete(a.text.toString().indexOf('a0;'), 'a0;'.length)
  await waitFor(() => a.text.toString() === b.text.toString() && a.text.length === markers.join('').length - 3,
    T.relay, () => `a and b converge; a=${JSON.stringify(a.text.toString())} b=${JSON.stringify(b.text.toString())}`)
  const content = a.text.toString()
  assert.ok(!content.includes('a0;'), 'the delete was applied on both sides')
  for (const m of markers.slice(1)) assert.equal(content.split(m).length, 2, `${m} exactly once in ${content}`)
})

test('a late joiner gets the full state (sync step 2) after both writers left', async () => {
  const room = roomName('late')
  const a = await syncedProvider(room)
  const b = await syncedProvider(room)
  a.text.insert(0, 'written by a; ')
  b.text.insert(0, 'written by b; ')
  await waitFor(() => a.text.length === 28 && a.text.toString() === b.text.toString(), T.relay, 'a and b converge')
  const content = a.text.toString()
  const stateVector = Y.encodeStateVector(a.doc)
  a.destroy()
  b.destroy()
  // both connections are closed: the room's last connection left, so the next one loads the
  // room from what the stage stored
  await waitFor(() => [a, b].every((c) => c.connections.sockets.every((s) => s.readyState === 3)), T.sync,
    'both writers\' sockets closed')
  // a raw client asks with an empty sync step 1: the answer (sync step 2) alone holds everything
  const r = await raw({ room })
  r.sendMessage(syncStep1(new Y.Doc()))
  const doc = new Y.Doc()
  let read = 0
  await waitFor(() => {
    for (const bytes of r.decoded().slice(read)) {
      read++
      try {
        const m = describeMessage(bytes)
        if (m.type === 'sync' && m.syncType === 1) Y.applyUpdate(doc, m.payload)
      } catch {}
    }
    return doc.getText('text').toString() === content
  }, T.sync, () => `sync step 2 rebuilds ${JSON.stringify(content)} (has ${JSON.stringify(doc.getText('text').toString())}; ${r.texts.length} frames; closed: ${JSON.stringify(r.closeInfo)})`)
  assert.deepEqual(Y.encodeStateVector(doc), stateVector, 'same state vector as the writers had')
  r.ws.close()
  // and a provider joining now syncs to the same state
  const c = await syncedProvider(room)
  await waitFor(() => c.text.toString() === content, T.sync, () => `late provider has the full state; got ${JSON.stringify(c.text.toString())}`)
  assert.deepEqual(Y.encodeStateVector(c.doc), stateVector)
})

// Acceptance: a paste far larger than API Gateway's 32 KB frame (and 128 KB message) on a
// deployed stage (YLAMBDA_URL; see lib.js). The sender is Node's built-in WebSocket, which like a
// browser sends every message as one frame, so the adapter sends the update as 32 KB pieces.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mixedText } from '../lib/helpers.js'
import { provider, synced, syncedProvider, roomName, waitFor, cleanup, T, Y } from './lib.js'

after(cleanup)

test('a 1 MB paste arrives intact at the other provider and at a fresh one, nobody disconnected', async (t) => {
  const socket = typeof globalThis.WebSocket === 'function' ? 'builtin' : 'ws'
  const room = roomName('large')
  const a = provider(room, { socket })
  await synced(a)
  const b = await syncedProvider(room)
  const paste = mixedText(1024 * 1024)
  a.text.insert(0, paste)
  const update = Y.encodeStateAsUpdate(a.doc).length
  t.diagnostic(`paste ${paste.length} chars, update ${update} bytes, sender socket: ${socket}`)
  assert.ok(update > 32768 * 4, 'more than four API Gateway frames (and over the 128 KB message limit)')
  await waitFor(() => b.text.length === paste.length, T.large,
    () => `b has the paste (b has ${b.text.length} of ${paste.length} chars; a's closes: ${JSON.stringify(a.closes)})`)
  assert.equal(b.text.toString(), paste, 'b has exactly the paste')
  const fresh = provider(room, { socket })
  await synced(fresh, T.large) // its sync step 2 comes in pieces too
  await waitFor(() => fresh.text.length === paste.length, T.large,
    () => `a fresh provider gets the paste (has ${fresh.text.length} of ${paste.length} chars)`)
  assert.equal(fresh.text.toString(), paste, 'the fresh provider has exactly the paste')
  assert.equal(a.connections.count, 1, `the sender was never disconnected: ${JSON.stringify(a.closes)}`)
  assert.equal(b.connections.count, 1, `the receiver was never disconnected: ${JSON.stringify(b.closes)}`)
})

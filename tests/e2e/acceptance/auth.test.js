// Acceptance: access control on a deployed stage (YLAMBDA_URL; see lib.js). Runs only with a
// token source (YLAMBDA_AUTH_SECRET, or YLAMBDA_TOKEN_RW / YLAMBDA_TOKEN_RO); a stage with a token
// source is expected to have access control on (AuthMode hs256 or jwks).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { describeMessage, syncStep1, syncUpdate, applyReceived } from '../lib/helpers.js'
import { auth, skipAuth, syncedProvider, raw, refusal, roomName, waitFor, never, cleanup, T, Y } from './lib.js'

after(cleanup)

test('access control: no token (or a malformed one) is refused with 401 at the handshake', { skip: skipAuth('rw') }, async () => {
  const room = roomName('auth')
  assert.equal(await refusal({ room }), 401, 'a document connection without a token')
  assert.equal(await refusal({}), 401, 'a signaling connection without a token')
  assert.equal(await refusal({ room, token: 'not.a.token' }), 401, 'a malformed token')
  assert.equal(await refusal({ room, token: auth.rw }), 'accepted', 'the rw token opens the room')
})

test('access control: a read-only token receives the document, its edits are never applied', { skip: skipAuth('ro') }, async () => {
  const room = roomName('readonly')
  const writer = await syncedProvider(room)
  writer.text.insert(0, 'from writer')
  const reader = await syncedProvider(room, { token: auth.ro })
  await waitFor(() => reader.text.toString() === 'from writer', T.relay, 'the read-only provider receives the document')
  reader.text.insert(0, 'nope ')
  writer.text.insert(writer.text.length, ' w2')
  await waitFor(() => reader.text.toString().endsWith(' w2'), T.relay, 'the read-only provider keeps receiving updates')
  await never(() => writer.text.toString().includes('nope'), T.quiet,
    () => `the read-only provider's edit reached the writer: ${JSON.stringify(writer.text.toString())}`)
  await waitFor(() => reader.denials.some((reason) => /read-only/.test(reason)), T.relay,
    () => `the read-only provider was told why (denials: ${JSON.stringify(reader.denials)})`)
  // A raw read-only connection: it gets the state, and its update is answered with
  // permission-denied (so the stage has handled it) and never stored.
  const r = await raw({ room }, { token: auth.ro })
  r.sendMessage(syncStep1(new Y.Doc()))
  const seen = new Y.Doc()
  await waitFor(() => { applyReceived(r, seen); return seen.getText('text').toString() === 'from writer w2' }, T.sync,
    'the raw read-only connection receives the state')
  const forbidden = new Y.Doc()
  forbidden.getText('text').insert(0, 'raw read-only edit ')
  r.sendMessage(syncUpdate(Y.encodeStateAsUpdate(forbidden)))
  await waitFor(() => r.decoded().some((bytes) => { try { return describeMessage(bytes).type === 'auth' } catch { return false } }),
    T.relay, () => `permission-denied for the read-only update (got ${r.texts.length} frames, closed: ${JSON.stringify(r.closeInfo)})`)
  assert.equal(r.closeInfo, null, 'the read-only connection stays open')
  const fresh = await syncedProvider(room)
  await waitFor(() => fresh.text.toString() === 'from writer w2', T.sync,
    () => `a fresh provider gets exactly the writer's text; got ${JSON.stringify(fresh.text.toString())}`)
  await never(() => fresh.text.toString() !== 'from writer w2' || writer.text.toString() !== 'from writer w2', T.quiet,
    () => `a read-only edit showed up: fresh=${JSON.stringify(fresh.text.toString())} writer=${JSON.stringify(writer.text.toString())}`)
  // y-webrtc peers would send edits to each other directly: a read-only token cannot signal
  assert.equal(await refusal({ token: auth.ro }), 403, 'a read-only token is refused for signaling')
})

// Acceptance: awareness (presence) on a deployed stage (YLAMBDA_URL; see lib.js).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { syncedProvider, roomName, waitFor, cleanup, T } from './lib.js'

after(cleanup)

const stateOf = (observer, subject) => observer.provider.awareness.getStates().get(subject.doc.clientID)

test('awareness reaches the other provider, and is removed there when one closes', async () => {
  const room = roomName('awareness')
  const a = await syncedProvider(room, { user: { name: 'alice' } })
  const b = await syncedProvider(room, { user: { name: 'bob' } })
  await waitFor(() => stateOf(b, a)?.user?.name === 'alice', T.relay, 'bob sees alice')
  await waitFor(() => stateOf(a, b)?.user?.name === 'bob', T.relay, 'alice sees bob')
  a.provider.awareness.setLocalStateField('cursor', { index: 7 })
  await waitFor(() => stateOf(b, a)?.cursor?.index === 7, T.relay, 'bob sees alice\'s cursor move')
  const aliceId = a.doc.clientID
  a.destroy()
  await waitFor(() => !b.provider.awareness.getStates().has(aliceId), T.relay,
    () => `alice's state removed at bob (bob has ${JSON.stringify([...b.provider.awareness.getStates()])})`)
  assert.deepEqual([...b.provider.awareness.getStates().keys()], [b.doc.clientID], 'only bob is left at bob')
  assert.ok(b.provider.wsconnected, 'bob is still connected')
})

// Access control through `ylambda dev`'s real $connect path, with real y-websocket clients: with
// YLAMBDA_AUTH_SECRET set, a connection needs a token (`params: { token }`) for its room; the
// tokens here come from `ylambda token`.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  startServer, cleanup, syncedClient, rawClient, waitFor, never, roomName, serverBin,
  syncStep1, describeMessage, Y
} from '../lib/helpers.js'

const SECRET = 'e2e auth secret, long enough for HS256'
let server
before(async () => { server = await startServer({ env: { YLAMBDA_AUTH_SECRET: SECRET } }) })
after(cleanup)

const mint = (...args) => execFileSync(serverBin(), ['token', ...args], {
  env: { ...process.env, YLAMBDA_AUTH_SECRET: SECRET },
  encoding: 'utf8'
}).trim()

/** The HTTP status a raw connection attempt is refused with. */
const refusal = async (query) => {
  try {
    const raw = await rawClient(server, query)
    raw.ws.close()
    return 'accepted'
  } catch (err) {
    const m = /Unexpected server response: (\d+)/.exec(String(err && err.message))
    return m ? Number(m[1]) : String(err)
  }
}

test('no token, a bad one, or one for another room is refused at $connect', async () => {
  const room = roomName('auth')
  assert.equal(await refusal(`?room=${room}`), 401)
  assert.equal(await refusal(`?room=${room}&token=not.a.token`), 401)
  const forged = execFileSync(serverBin(), ['token', '--room', room], {
    env: { ...process.env, YLAMBDA_AUTH_SECRET: 'a different secret of some length' },
    encoding: 'utf8'
  }).trim()
  assert.equal(await refusal(`?room=${room}&token=${forged}`), 401)
  assert.equal(await refusal(`?room=${room}&token=${mint('--room', 'elsewhere')}`), 403)
  assert.equal(await refusal(`?room=${room}&token=${mint('--room', room)}`), 'accepted')
  assert.equal(await refusal(`?room=${room}&token=${mint('--rooms', 'au*')}`), 'accepted')
})

test('providers with tokens sync; a read-only token sees edits but never makes one stick', async () => {
  const room = roomName('auth-sync')
  const writer = await syncedClient(server, room, { params: { token: mint('--room', room) } })
  const reader = await syncedClient(server, room, { params: { token: mint('--room', room, '--read-only'), readonly: '0' } })
  writer.text.insert(0, 'hello')
  await waitFor(() => reader.text.toString() === 'hello', 10000, 'the read-only client sees the edit')
  reader.text.insert(0, 'nope ')
  await never(() => writer.text.toString() !== 'hello', 1500, 'a read-only edit reached the writer')
  // Reconnecting re-sends the reader's unsynced edit (sync step 2): still dropped, every time.
  for (let round = 0; round < 2; round++) {
    reader.provider.disconnect()
    reader.provider.connect()
    await waitFor(() => reader.provider.synced, 10000, `read-only client resynced (round ${round})`)
    writer.text.insert(writer.text.length, `+${round}`)
    await waitFor(() => reader.text.toString().includes(`+${round}`), 10000, 'the reader still sees edits')
    await never(() => writer.text.toString().includes('nope'), 1000, 'a read-only edit stuck after a reconnect')
  }
  const fresh = await syncedClient(server, room, { params: { token: mint('--room', room) } })
  await waitFor(() => fresh.text.toString() === writer.text.toString(), 10000, 'a fresh client gets the writer\'s text')
  assert.ok(!fresh.text.toString().includes('nope'), 'and none of the reader\'s')
})

test('a token can travel as a Sec-WebSocket-Protocol entry; the answer is one offered', async () => {
  const room = roomName('auth-protocol')
  const token = mint('--room', room)
  const client = await syncedClient(server, room, { protocols: ['ylambda', `token.${token}`] })
  assert.equal(client.provider.ws.protocol, 'ylambda')
  const only = await rawClient(server, `?room=${room}`, [`token.${token}`])
  assert.equal(only.ws.protocol, `token.${token}`, 'a lone token entry is echoed (it is the only one offered)')
  only.ws.close()
  const forged = execFileSync(serverBin(), ['token', '--room', room], {
    env: { ...process.env, YLAMBDA_AUTH_SECRET: 'a different secret of some length' },
    encoding: 'utf8'
  }).trim()
  await assert.rejects(rawClient(server, `?room=${room}`, ['ylambda', `token.${forged}`]), /401/)
})

test('a connection whose token expires is closed (1008) at its next message, told why', async () => {
  const room = roomName('auth-expiry')
  const raw = await rawClient(server, `?room=${room}&token=${mint('--room', room, '--ttl', '2')}`)
  const doc = new Y.Doc()
  raw.sendMessage(syncStep1(doc))
  await waitFor(() => raw.texts.length > 0, 10000, 'answered while the token is valid')
  await new Promise((resolve) => setTimeout(resolve, 2600))
  assert.equal(raw.closeInfo, null, 'not closed before it sends')
  raw.sendMessage(syncStep1(doc))
  const closed = await raw.closed
  assert.equal(closed.code, 1008)
  const told = raw.decoded().map(describeMessage)
  assert.ok(told.some((m) => m.type === 'auth' && /token expired/.test(m.reason)), `told why: ${JSON.stringify(told)}`)
})

// Access control through `ylambda dev`'s real $connect path, with real y-websocket clients: with
// YLAMBDA_AUTH_SECRET set, a connection needs a token (`params: { token }`) for its room; the
// tokens here come from `ylambda token`.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  startServer, cleanup, syncedClient, rawClient, waitFor, never, roomName, serverBin
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
  const fresh = await syncedClient(server, room, { params: { token: mint('--room', room) } })
  await waitFor(() => fresh.text.toString() === 'hello', 10000, 'a fresh client gets only the writer\'s text')
})

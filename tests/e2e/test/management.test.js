// The @connections management API that ylambda dev serves on its own port (API Gateway's
// POST/GET/DELETE https://{api}/{stage}/@connections/{id}).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, cleanup, http, rawClient, syncedClient, waitFor, roomName, syncUpdate, Y } from '../lib/helpers.js'

let server
// the connection ids are learnt from the server's info log line
// `connected connection_id="…" room="…"`
before(async () => { server = await startServer({ env: { RUST_LOG: 'info' } }) })
after(cleanup)

const connectionIdOf = (room) => waitFor(() => {
  const re = /connected connection_id="([^"]+)" room="([^"]*)"/g
  for (const m of server.logTail().matchAll(re)) if (m[2] === room) return m[1]
  return null
}, 5000, `log line "connected connection_id=… room=\\"${room}\\""`)

const path = (id, stage = '') => `${stage}/@connections/${encodeURIComponent(id)}`

test('unknown connection ids answer 410 Gone for POST, GET and DELETE', async () => {
  for (const method of ['POST', 'GET', 'DELETE']) {
    const res = await http(server, method, path('doesNotExist01='), method === 'POST' ? 'hello' : undefined)
    assert.equal(res.status, 410, `${method} -> ${res.status} ${res.text}`)
  }
  assert.ok(server.alive())
})

test('GET describes a live connection; POST sends it a frame; DELETE closes it, then 410', async () => {
  const room = roomName('mgmt')
  const raw = await rawClient(server, `?room=${room}`)
  const id = await connectionIdOf(room)
  assert.match(id, /^[A-Za-z0-9]{15}=$/, 'an API Gateway-shaped id')

  const info = await http(server, 'GET', path(id))
  assert.equal(info.status, 200, info.text)
  const json = JSON.parse(info.text)
  assert.equal(json.identity.sourceIp, '127.0.0.1')
  assert.ok(!Number.isNaN(Date.parse(json.connectedAt)), `connectedAt ${json.connectedAt}`)
  assert.ok(!Number.isNaN(Date.parse(json.lastActiveAt)), `lastActiveAt ${json.lastActiveAt}`)

  const posted = await http(server, 'POST', path(id), 'hello from the management API')
  assert.equal(posted.status, 200, posted.text)
  await waitFor(() => raw.texts.includes('hello from the management API'), 5000, 'posted text frame arrives')
  const staged = await http(server, 'POST', path(id, '/local'), 'staged')
  assert.equal(staged.status, 200, staged.text)
  await waitFor(() => raw.texts.includes('staged'), 5000, 'stage-prefixed POST arrives')

  const deleted = await http(server, 'DELETE', path(id))
  assert.ok(deleted.status === 204 || deleted.status === 200, `DELETE -> ${deleted.status}`)
  await waitFor(() => raw.closeInfo, 5000, 'DELETE closes the socket')
  await waitFor(async () => (await http(server, 'GET', path(id))).status === 410, 5000, 'GET after DELETE is 410')
  assert.equal((await http(server, 'POST', path(id), 'late')).status, 410)
})

test('a y-websocket message POSTed as base64 text reaches a provider through the adapter', async () => {
  const room = roomName('mgmt-provider')
  const client = await syncedClient(server, room)
  const id = await connectionIdOf(room)
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'pushed by the management API')
  const body = Buffer.from(syncUpdate(Y.encodeStateAsUpdate(doc))).toString('base64')
  const res = await http(server, 'POST', path(id), body)
  assert.equal(res.status, 200, res.text)
  await waitFor(() => client.text.toString() === 'pushed by the management API', 5000, 'provider applied the posted update')
})

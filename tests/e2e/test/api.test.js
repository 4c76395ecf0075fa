// The HTTP API of `ylambda dev` with real HTTP requests (curl and fetch) and real y-websocket
// clients: a server-side writer's update reaches connected clients live, the document state is
// served with an ETag (304 when unchanged) and as JSON, the room directory shows connections and
// their events, and every refusal is a clear JSON answer. Run on every backend of the e2e pass
// (embedded, redis-url, dynamodb, and beside the real Lambda binaries).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startServer, cleanup, syncedClient, waitFor, roomName, serverBin, delay, Y } from '../lib/helpers.js'

const SECRET = 'e2e api secret, long enough for HS256'
let server
let secured
before(async () => {
  server = await startServer()
  secured = await startServer({ env: { YLAMBDA_AUTH_SECRET: SECRET } })
})
after(cleanup)

const mint = (...args) => execFileSync(serverBin(), ['token', ...args], {
  env: { ...process.env, YLAMBDA_AUTH_SECRET: SECRET },
  encoding: 'utf8'
}).trim()

/** A Yjs update inserting `text` at the start of the `text` root, from a fresh document. */
const textUpdate = (text) => {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

/** POSTs `update` with curl, as a server-side writer would; returns status and body. */
const curlPost = async (base, room, update, headers = []) => {
  const dir = await mkdtemp(join(tmpdir(), 'ylambda-api-'))
  const file = join(dir, 'update.bin')
  await writeFile(file, update)
  const args = ['-sS', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST',
    '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`,
    ...headers.flatMap((h) => ['-H', h]),
    `${base.httpUrl}/api/rooms/${encodeURIComponent(room)}/update`]
  const { stdout } = await promisify(execFile)('curl', args, { maxBuffer: 1 << 20 })
  const cut = stdout.lastIndexOf('\n')
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) }
}

const get = (base, path, headers = {}) => fetch(base.httpUrl + path, { headers })

test('a curl POST of an update shows up in connected y-websocket clients', async () => {
  const room = roomName('api post')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  const posted = await curlPost(server, room, textUpdate('from the server'))
  assert.equal(posted.status, 200, posted.body)
  assert.deepEqual(JSON.parse(posted.body), { applied: true })
  await waitFor(() => a.text.toString() === 'from the server' && b.text.toString() === 'from the server',
    10000, 'both clients got the posted update')
  // A client that joins later gets it in its sync, like any other update.
  const late = await syncedClient(server, room)
  assert.equal(late.text.toString(), 'from the server')
})

test('the state is served with a strong ETag, 304 when unchanged, and as JSON', async () => {
  const room = roomName('api state')
  const writer = await syncedClient(server, room)
  writer.text.insert(0, 'hello state')
  const first = await waitFor(async () => {
    const res = await get(server, `/api/rooms/${encodeURIComponent(room)}/state`)
    if (res.status !== 200) return null
    const body = new Uint8Array(await res.arrayBuffer())
    const doc = new Y.Doc()
    Y.applyUpdate(doc, body)
    return doc.getText('text').toString() === 'hello state' ? res : null
  }, 10000, 'the state holds the edit')
  assert.equal(first.headers.get('content-type'), 'application/octet-stream')
  assert.equal(first.headers.get('cache-control'), 'max-age=3')
  const etag = first.headers.get('etag')
  assert.match(etag, /^"[0-9a-f]{32}"$/)
  const again = await get(server, `/api/rooms/${encodeURIComponent(room)}/state`, { 'If-None-Match': etag })
  assert.equal(again.status, 304)
  assert.equal(again.headers.get('etag'), etag)
  assert.equal((await again.arrayBuffer()).byteLength, 0)
  writer.text.insert(11, '!')
  await waitFor(async () => {
    const res = await get(server, `/api/rooms/${encodeURIComponent(room)}/state`, { 'If-None-Match': etag })
    return res.status === 200 && res.headers.get('etag') !== etag
  }, 10000, 'a new edit changes the ETag')
  const json = await get(server, `/api/rooms/${encodeURIComponent(room)}/state?format=json`)
  assert.equal(json.status, 200)
  assert.equal(json.headers.get('content-type'), 'application/json')
  assert.deepEqual(await json.json(), { text: 'hello state!' })
})

test('the room directory lists the room with its connections and events', async () => {
  const room = roomName('api directory')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  const listed = await waitFor(async () => {
    const body = await (await get(server, '/api/rooms?limit=100')).json()
    return body.rooms.find((r) => r.room === room && r.connections === 2)
  }, 10000, 'the room is listed with 2 connections')
  assert.ok(listed.last_active_ms > Date.now() - 60000)
  b.destroy()
  const detail = await waitFor(async () => {
    const body = await (await get(server, `/api/rooms/${encodeURIComponent(room)}`)).json()
    return body.connections === 1 ? body : null
  }, 10000, 'the room shows 1 connection after one left')
  assert.equal(detail.room, room)
  assert.equal(detail.members.length, 1)
  assert.deepEqual(detail.events.map((e) => e.kind).sort(), ['closed', 'opened', 'opened'])
  a.destroy()
  await waitFor(async () => {
    const body = await (await get(server, '/api/rooms?limit=100')).json()
    return !body.rooms.some((r) => r.room === room)
  }, 10000, 'an empty room is not listed')
})

test('refusals are clear JSON answers: 400, 404, 405, 413', async () => {
  const room = roomName('api errors')
  const unknown = await get(server, `/api/rooms/${encodeURIComponent(room)}/state`)
  assert.equal(unknown.status, 404)
  assert.equal((await unknown.json()).error, 'no_such_room')
  const garbage = await curlPost(server, room, new Uint8Array([1, 2, 3]))
  assert.equal(garbage.status, 400)
  assert.equal(JSON.parse(garbage.body).error, 'bad_request')
  const wrongMethod = await get(server, `/api/rooms/${encodeURIComponent(room)}/update`)
  assert.equal(wrongMethod.status, 405)
  assert.equal(wrongMethod.headers.get('allow'), 'POST')
  // Over YLAMBDA_MAX_ASSEMBLED_BYTES (16 MiB by default): refused from its Content-Length, before
  // it is read (curl sends `Expect: 100-continue` and stops there; a client that sends the body
  // regardless may see the connection closed after the answer).
  const huge = await curlPost(server, room, new Uint8Array(16 * 1024 * 1024 + 1))
  assert.equal(huge.status, 413)
  assert.equal(JSON.parse(huge.body).error, 'too_large')
  assert.equal((await get(server, `/api/rooms/${encodeURIComponent(room)}/state`)).status, 404,
    'nothing refused was stored')
})

test('with access control on: bearer tokens, admin for listing, read-only cannot write', async () => {
  const room = roomName('api auth')
  const writer = mint('--room', room)
  const reader = mint('--room', room, '--read-only')
  const admin = mint('--admin')
  const noToken = await curlPost(secured, room, textUpdate('x'))
  assert.equal(noToken.status, 401)
  assert.equal(JSON.parse(noToken.body).error, 'unauthorized')
  const elsewhere = await curlPost(secured, room, textUpdate('x'), [`Authorization: Bearer ${mint('--room', 'elsewhere')}`])
  assert.equal(elsewhere.status, 403)
  const readOnly = await curlPost(secured, room, textUpdate('x'), [`Authorization: Bearer ${reader}`])
  assert.equal(readOnly.status, 403)
  const written = await curlPost(secured, room, textUpdate('allowed'), [`Authorization: Bearer ${writer}`])
  assert.equal(written.status, 200, written.body)
  const json = await get(secured, `/api/rooms/${encodeURIComponent(room)}/state?format=json`, { Authorization: `Bearer ${reader}` })
  assert.deepEqual(await json.json(), { text: 'allowed' })
  assert.equal((await get(secured, '/api/rooms', { Authorization: `Bearer ${writer}` })).status, 403)
  assert.equal((await get(secured, '/api/rooms', { Authorization: `Bearer ${admin}` })).status, 200)
  assert.equal((await get(secured, `/api/rooms/${encodeURIComponent(room)}?token=${reader}`)).status, 200)
})

/** Reads a server-sent event stream into `events` ({ id, event, data }) until `stop()`. */
const sse = (base, path, headers = {}) => {
  const events = []
  const controller = new AbortController()
  const done = (async () => {
    const res = await fetch(base.httpUrl + path, { headers, signal: controller.signal })
    events.status = res.status
    events.contentType = res.headers.get('content-type')
    if (res.status !== 200) return
    const decoder = new TextDecoder()
    let buffered = ''
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true })
      let cut
      while ((cut = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, cut)
        buffered = buffered.slice(cut + 2)
        const fields = {}
        for (const line of block.split('\n')) {
          const m = /^([a-z]+): ?(.*)$/i.exec(line)
          if (m) fields[m[1]] = m[2]
        }
        if (fields.data !== undefined) events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) })
      }
    }
  })().catch((err) => { if (err.name !== 'AbortError') events.error = err })
  return { events, stop: async () => { controller.abort(); await done } }
}

test('the event stream: current rooms first, then connections opening and closing, resumable', async () => {
  // Processes other than the stream's (the Lambda binaries) read the watch flag at most once per
  // YLAMBDA_DASHBOARD_CHECK_SECS: 1 s here, so the test waits a second after the stream opens.
  const server = await startServer({ env: { YLAMBDA_DASHBOARD_CHECK_SECS: '1' } })
  const room = roomName('api events')
  const early = await syncedClient(server, room)
  const stream = sse(server, '/api/events')
  await waitFor(() => stream.events.some((e) => e.event === 'rooms' &&
    e.data.rooms.some((r) => r.room === room && r.connections === 1)), 10000, 'the current rooms, first')
  assert.equal(stream.events.contentType, 'text/event-stream')
  await delay(1200)
  const late = await syncedClient(server, room)
  late.text.insert(0, 'typed while watched')
  await waitFor(() => stream.events.some((e) => e.event === 'opened' && e.data.room === room),
    15000, 'the new connection is reported')
  await waitFor(() => stream.events.some((e) => e.event === 'updates' && e.data.room === room),
    15000, 'the update is counted')
  late.destroy()
  const closed = await waitFor(() => stream.events.find((e) => e.event === 'closed' && e.data.room === room),
    15000, 'the departure is reported')
  assert.ok(closed.id, 'feed events carry an id')
  await stream.stop()
  // Resuming after the `opened` event replays what came after it.
  const opened = stream.events.find((e) => e.event === 'opened' && e.data.room === room)
  const resumed = sse(server, '/api/events', { 'Last-Event-ID': opened.id })
  await waitFor(() => resumed.events.some((e) => e.event === 'closed' && e.data.room === room),
    10000, 'a resumed stream replays events after its Last-Event-ID')
  assert.ok(!resumed.events.some((e) => e.event === 'opened' && e.data.room === room), 'nothing before it')
  await resumed.stop()
  early.destroy()
  const forged = sse(server, '/api/events', { 'Last-Event-ID': 'forged' })
  await waitFor(() => forged.events.status !== undefined, 5000, 'an answer')
  assert.equal(forged.events.status, 400)
  await forged.stop()
  const locked = sse(secured, '/api/events', { Authorization: `Bearer ${mint('--room', room)}` })
  await waitFor(() => locked.events.status !== undefined, 5000, 'an answer')
  assert.equal(locked.events.status, 403, 'a room token cannot watch every room')
  await locked.stop()
})

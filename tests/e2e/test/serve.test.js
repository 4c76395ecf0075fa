// `ylambda serve` (direct mode) with stock y-websocket clients (no adapter: binary frames, the
// room in the URL path), as @y/websocket-server serves them. Which tests run depends on the pass:
// - in process (no YLAMBDA_LAMBDAS_DIR), embedded or redis-url: one instance, the y-websocket
//   behaviours the reference server supports, and y-webrtc signaling;
// - redis-url (aws + Redis): two instances sharing one room;
// - the Lambda pass on redis-url: two instances and `ylambda dev --lambdas` in one room, one
//   instance killed mid-edit behind a load balancer;
// - the dynamodb profile: `serve` refuses to start and says why (no pub/sub to relay through).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import {
  startServer, cleanup, syncedClient, crashClient, waitFor, roomName, WebSocket, delay
} from '../lib/helpers.js'

after(cleanup)

const aws = process.env.YLAMBDA_BACKEND === 'aws'
const dynamodb = aws && process.env.YLAMBDA_DOC_STORE === 'dynamodb'
const lambdas = !!process.env.YLAMBDA_LAMBDAS_DIR
const inProcess = !lambdas && !dynamodb

const startDirect = (env = {}) => startServer({ command: 'serve', env })
const stock = (server, room, opts = {}) => syncedClient(server, room, { socket: 'stock', ...opts })
const stateOf = (observer, subject) => observer.provider.awareness.getStates().get(subject.doc.clientID)

test('stock y-websocket clients: sync, awareness, its removal on close, and reconnect', { skip: !inProcess && 'one pass in process is enough' }, async () => {
  const server = await startDirect()
  const room = roomName('serve')
  const a = await stock(server, room, { user: { name: 'alice' } })
  const b = await stock(server, room, { user: { name: 'bob' } })
  a.text.insert(0, 'hello')
  await waitFor(() => b.text.toString() === 'hello', 5000, 'b gets a\'s edit')
  await waitFor(() => stateOf(b, a)?.user?.name === 'alice' && stateOf(a, b)?.user?.name === 'bob', 5000, 'awareness both ways')

  // Awareness removal when a client goes (the server announces it for a crashed one too).
  const c = await stock(server, room, { user: { name: 'carol' } })
  await waitFor(() => stateOf(b, c)?.user?.name === 'carol', 5000, 'b sees carol')
  crashClient(c)
  await waitFor(() => !b.provider.awareness.getStates().has(c.doc.clientID), 8000, 'carol\'s state removed at b')

  // Reconnect: the connection drops, a edits meanwhile, the provider reconnects and syncs.
  const before = a.connections.count
  a.provider.ws.terminate()
  a.text.insert(5, ' world')
  await waitFor(() => a.connections.count > before && a.provider.synced, 8000, 'a reconnected')
  await waitFor(() => b.text.toString() === 'hello world', 5000, 'the offline edit reached b')

  // A late joiner gets the state from the log.
  const late = await stock(server, room)
  assert.equal(late.text.toString(), 'hello world')
})

test('y-webrtc signaling on the same port', { skip: !inProcess && 'one pass in process is enough' }, async () => {
  const server = await startDirect()
  const topic = roomName('topic')
  const open = async () => {
    const ws = new WebSocket(server.url)
    const received = []
    ws.on('message', (data, binary) => { if (!binary) received.push(JSON.parse(data.toString())) })
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return { ws, received }
  }
  const p1 = await open()
  const p2 = await open()
  for (const p of [p1, p2]) p.ws.send(JSON.stringify({ type: 'subscribe', topics: [topic] }))
  p1.ws.send(JSON.stringify({ type: 'ping' }))
  await waitFor(() => p1.received.some((m) => m.type === 'pong'), 5000, 'pong')
  // Subscribes are handled in order with the ping after them on p1; p2's may lag: wait for the
  // publish to reach both.
  await waitFor(async () => {
    p1.ws.send(JSON.stringify({ type: 'publish', topic, data: { from: 'p1' } }))
    await delay(100)
    return p2.received.some((m) => m.type === 'publish' && m.data?.from === 'p1' && m.clients === 2)
  }, 5000, 'p2 gets p1\'s publish with both subscribers counted')
  assert.ok(p1.received.some((m) => m.type === 'publish' && m.topic === topic), 'the sender gets its publish too')
  p1.ws.close()
  p2.ws.close()
})

test('serve refuses to start without pub/sub, and says why', { skip: !(dynamodb && !lambdas) && 'dynamodb profile only' }, async () => {
  await assert.rejects(startDirect(), /YLAMBDA_REDIS_URL/)
})

test('two instances on one Redis: a room shared, each edit delivered once', { skip: !(aws && !dynamodb && !lambdas) && 'redis-url profile, in process' }, async () => {
  const one = await startDirect()
  const two = await startDirect()
  const room = roomName('two')
  const a = await stock(one, room)
  const b = await stock(two, room)
  const c = await stock(two, room)
  const [atA, atB, atC] = [a, b, c].map(countUpdates)
  // 20 transactions: 20 update messages.
  for (let i = 0; i < 20; i++) a.text.insert(a.text.length, `${i},`)
  const expected = Array.from({ length: 20 }, (_, i) => `${i},`).join('')
  await waitFor(() => b.text.toString() === expected && c.text.toString() === expected, 10000, 'both clients of the other instance converge')
  await delay(500)
  // A repeat would apply as a no-op, invisible in the text: count the messages on the sockets.
  assert.equal(atB.updates, 20, 'each update once at b')
  assert.equal(atC.updates, 20, 'each update once at c (the second client of that instance)')
  assert.equal(atA.updates, 0, 'the sender gets none of its own updates back')
  assert.equal(c.connections.count, 1, 'c never reconnected')
})

test('two serve instances and the Lambdas in one room converge; killing an instance mid-edit loses nothing', { skip: !(aws && !dynamodb && lambdas) && 'redis-url profile through the Lambdas' }, async () => {
  const one = await startDirect()
  const two = await startDirect()
  const gateway = await startServer() // ylambda dev --lambdas (this pass's environment)
  const balancer = await loadBalancer([one, two])
  const room = roomName('mixed')
  // Stock clients through the balancer: the first lands on `one`, the second on `two`.
  const s1 = await stock(balancer, room, { maxBackoffTime: 300 })
  const s2 = await stock(balancer, room, { maxBackoffTime: 300 })
  const viaLambdas = await syncedClient(gateway, room) // the adapter on API Gateway
  assert.deepEqual(balancer.placements.slice(0, 2), [0, 1], 'one stock client on each instance')
  const clients = { s1, s2, viaLambdas }
  const typed = { s1: [], s2: [], viaLambdas: [] }
  const type = (name, i) => {
    const word = `${name}${i};`
    const c = clients[name]
    c.text.insert(c.text.length, word)
    typed[name].push(word)
  }
  for (let i = 0; i < 10; i++) {
    for (const name of Object.keys(clients)) type(name, i)
    await delay(30)
  }
  // Mid-edit: the instance holding s1 dies without a goodbye. s1 keeps typing offline.
  one.proc.kill('SIGKILL')
  for (let i = 10; i < 20; i++) {
    for (const name of Object.keys(clients)) type(name, i)
    await delay(30)
  }
  await waitFor(() => s1.connections.count > 1 && s1.provider.synced, 15000, 's1 reconnected through the balancer')
  assert.equal(balancer.placements.at(-1), 1, 's1\'s new connection went to the live instance')
  const everything = (c) => Object.values(typed).flat().every((w) => c.text.toString().includes(w))
  await waitFor(() => Object.values(clients).every(everything), 20000,
    () => `every client has every edit: ${JSON.stringify(Object.fromEntries(Object.entries(clients).map(([n, c]) => [n, c.text.toString().length])))}`)
  const texts = Object.values(clients).map((c) => c.text.toString())
  assert.ok(texts.every((t) => t === texts[0]), 'the three converge on one text')
  balancer.close()
})

/**
 * A TCP load balancer on loopback: each connection goes to the next live backend, round robin.
 * `placements` lists the backend index each connection went to.
 */
const loadBalancer = async (backends) => {
  const placements = []
  let next = 0
  const server = net.createServer((socket) => {
    const live = backends.map((b, i) => [b, i]).filter(([b]) => b.alive())
    if (live.length === 0) { socket.destroy(); return }
    const [backend, index] = live[next++ % live.length]
    placements.push(index)
    const upstream = net.connect(backend.port, '127.0.0.1')
    socket.pipe(upstream).pipe(socket)
    const end = () => { socket.destroy(); upstream.destroy() }
    socket.on('error', end)
    upstream.on('error', end)
    socket.on('close', end)
    upstream.on('close', end)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = /** @type {net.AddressInfo} */ (server.address())
  return { url: `ws://127.0.0.1:${port}`, placements, close: () => server.close() }
}

/**
 * Counts the y-websocket update messages (sync, update) a stock client's current socket receives
 * from now on.
 */
const countUpdates = (client) => {
  const counter = { updates: 0 }
  client.provider.ws.on('message', (data) => {
    const bytes = new Uint8Array(data)
    if (bytes[0] === 0 && bytes[1] === 2) counter.updates++
  })
  return counter
}

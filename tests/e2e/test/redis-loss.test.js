// ARCHITECTURE.md invariant 6, end to end: when Redis loses its data mid-session (failover, FLUSHALL),
// nothing the clients hold is lost. Runs when the suite runs on the aws backend
// (YLAMBDA_BACKEND=aws with YLAMBDA_REDIS_URL); on the embedded backend and the DynamoDB doc store
// there is no Redis to lose.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { startServer, cleanup, syncedClient, waitFor, roomName } from '../lib/helpers.js'

const onAws = process.env.YLAMBDA_BACKEND === 'aws' && process.env.YLAMBDA_DOC_STORE !== 'dynamodb'
const skip = onAws ? false : 'needs YLAMBDA_BACKEND=aws with the Redis doc store'

/** Sends FLUSHALL to the Redis the server uses and waits for +OK. */
const flushRedis = (url) => new Promise((resolve, reject) => {
  const { hostname, port } = new URL(url)
  const socket = net.connect({ host: hostname, port: Number(port) || 6379 }, () => {
    socket.write('*1\r\n$8\r\nFLUSHALL\r\n')
  })
  socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('FLUSHALL timed out')) })
  socket.on('data', (data) => {
    socket.end()
    const reply = data.toString()
    if (reply.startsWith('+OK')) resolve()
    else reject(new Error(`FLUSHALL answered ${JSON.stringify(reply)}`))
  })
  socket.on('error', reject)
})

let server
before(async () => { if (onAws) server = await startServer() })
after(cleanup)

test('Redis flushed mid-session: a new client still gets everything, and edits keep flowing', { skip }, async () => {
  const room = roomName('redis-loss')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  a.text.insert(0, 'before the flush;')
  b.text.insert(0, 'also before;')
  await waitFor(() => a.text.toString().length === b.text.toString().length &&
    a.text.toString().includes('also before;') && b.text.toString().includes('before the flush;'), 10000, 'a and b converge')

  // The room still has connections, so nothing was compacted to S3: Redis held the only copy.
  await flushRedis(process.env.YLAMBDA_REDIS_URL)

  const c = await syncedClient(server, room)
  await waitFor(() => c.text.toString().includes('before the flush;') && c.text.toString().includes('also before;'), 15000,
    () => `the server asked a and b to resend; c has ${JSON.stringify(c.text.toString())}`)
  c.text.insert(0, 'after;')
  a.text.insert(0, 'a after;')
  await waitFor(() => [a, b, c].every((x) => x.text.toString() === a.text.toString()) &&
    a.text.toString().includes('after;') && a.text.toString().includes('a after;'), 10000, 'all three converge after the flush')

  // Everyone leaves: the last one out compacts what the server re-learned into S3.
  const content = a.text.toString()
  a.destroy(); b.destroy(); c.destroy()
  const d = await syncedClient(server, room)
  await waitFor(() => d.text.toString() === content, 15000,
    () => `the re-learned document was compacted and reads back; d has ${JSON.stringify(d.text.toString())}`)
  assert.equal(d.text.toString(), content)
})

test('Redis flushed mid-session: clients that reconnect converge with nothing lost', { skip }, async () => {
  const room = roomName('redis-loss-reconnect')
  const a = await syncedClient(server, room)
  const b = await syncedClient(server, room)
  a.text.insert(0, 'kept by clients;')
  await waitFor(() => b.text.toString() === 'kept by clients;', 10000, 'b sees a\'s edit')
  await flushRedis(process.env.YLAMBDA_REDIS_URL)
  // Both reconnect (as after a network blip): their sync step 2 answers refill the server.
  a.provider.disconnect(); b.provider.disconnect()
  b.text.insert(0, 'offline;')
  a.provider.connect(); b.provider.connect()
  await waitFor(() => a.text.toString() === b.text.toString() && a.text.toString().includes('offline;') &&
    a.text.toString().includes('kept by clients;'), 15000, () => `a=${a.text.toString()} b=${b.text.toString()}`)
  const c = await syncedClient(server, room)
  await waitFor(() => c.text.toString() === a.text.toString(), 15000,
    () => `a newcomer gets the whole document; c has ${JSON.stringify(c.text.toString())}`)
})

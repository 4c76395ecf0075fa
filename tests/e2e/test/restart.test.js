// Durability across a clean restart (SIGINT compacts documents into the data dir).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { startServer, cleanup, syncedClient, synced, waitFor, roomName, Y } from '../lib/helpers.js'

after(cleanup)

/** Every file under dir (recursively). */
const filesUnder = async (dir) => (await readdir(dir, { recursive: true, withFileTypes: true }))
  .filter((e) => e.isFile()).map((e) => e.name)

test('a document survives a restart: a new client gets it back from the snapshot', async () => {
  const first = await startServer()
  const room = roomName('durable')
  const other = roomName('durable-other')
  const a = await syncedClient(first, room)
  const b = await syncedClient(first, room)
  const o = await syncedClient(first, other)
  a.text.insert(0, 'persist me')
  for (let i = 0; i < 50; i++) a.text.insert(a.text.length, ` ${i}`)
  a.text.delete(0, 8) // deletions must survive too
  o.text.insert(0, 'the other room')
  const expected = a.text.toString()
  await waitFor(() => b.text.toString() === expected, 10000, 'the server relayed every edit (so it has them)')
  a.destroy()
  b.destroy()
  o.destroy()
  const exit = await first.stop()
  assert.deepEqual(exit, { code: 0, signal: null }, 'SIGINT shuts the server down cleanly with status 0')
  if (process.env.YLAMBDA_BACKEND !== 'aws') {
    // Embedded backend: snapshots are files in the data dir (on aws they are S3 objects).
    assert.ok((await filesUnder(first.dataDir)).length > 0, 'the data dir holds something after shutdown')
  }

  const second = await startServer({ dataDir: first.dataDir })
  const c = await syncedClient(second, room)
  await waitFor(() => c.text.toString() === expected, 10000,
    () => `document restored; expected ${JSON.stringify(expected)}, got ${JSON.stringify(c.text.toString())}`)
  const d = await syncedClient(second, other)
  await waitFor(() => d.text.toString() === 'the other room', 10000, 'the other room restored too')
  // restored, not just readable: edits after the restart work and survive another restart
  c.text.insert(0, 'after ')
  const e = await syncedClient(second, room)
  await waitFor(() => e.text.toString() === 'after ' + expected, 10000, 'edits after the restart')
  c.destroy()
  e.destroy()
  assert.equal((await second.stop()).code, 0)
  const third = await startServer({ dataDir: first.dataDir })
  const f = await syncedClient(third, room)
  await waitFor(() => f.text.toString() === 'after ' + expected, 10000,
    () => `second restart; got ${JSON.stringify(f.text.toString())}`)
})

test('clients connected during a restart reconnect and converge with no loss, offline edits included', async () => {
  const first = await startServer()
  const room = roomName('reconnect')
  const a = await syncedClient(first, room)
  const b = await syncedClient(first, room)
  a.text.insert(0, '[a-before]')
  b.text.insert(0, '[b-before]')
  await waitFor(() => a.text.toString() === b.text.toString() && a.text.length === 20, 10000, 'a and b in sync before the restart')
  const connectionsBefore = [a.connections.count, b.connections.count]

  const exit = await first.stop()
  assert.equal(exit.code, 0)
  await waitFor(() => !a.provider.wsconnected && !b.provider.wsconnected, 10000, 'both clients notice the server is gone')
  // offline edits while the server is down
  a.text.insert(a.text.length, '[a-offline]')
  b.text.insert(0, '[b-offline]')

  // same address (the providers' URL), same data dir
  const second = await startServer({ dataDir: first.dataDir, port: first.port })
  await synced(a, 20000)
  await synced(b, 20000)
  assert.ok(a.connections.count > connectionsBefore[0] && b.connections.count > connectionsBefore[1], 'both reconnected')
  const markers = ['[a-before]', '[b-before]', '[a-offline]', '[b-offline]']
  const hasAll = (c) => markers.every((m) => c.text.toString().includes(m))
  await waitFor(() => hasAll(a) && hasAll(b) && a.text.toString() === b.text.toString(), 15000,
    () => `a and b converge after the restart; a=${JSON.stringify(a.text.toString())} b=${JSON.stringify(b.text.toString())}`)
  // the server has it all, not just the two peers
  const c = await syncedClient(second, room)
  await waitFor(() => c.text.toString() === a.text.toString(), 10000,
    () => `a new client sees everything; got ${JSON.stringify(c.text.toString())}`)
  assert.deepEqual(Y.encodeStateVector(c.doc), Y.encodeStateVector(a.doc))
})

// Documents larger than one frame, from real browsers: Chromium's WebSocket sends every message
// as one frame and API Gateway (and `ylambda dev`, which enforces the same 32 KB frame limit)
// closes a connection on a frame over 32 KB, so the ylambda-client adapter sends such messages
// as numbered pieces that the server reassembles. A page pastes 1 MB; a page connects with 5 MB
// it built offline; a second page and a fresh Node client receive everything, and nobody is
// disconnected. Runs on the backend named by $YLAMBDA_BACKEND, through the real Lambda binaries
// when $YLAMBDA_LAMBDAS_DIR is set (scripts/browser-tests.sh runs all three).
import { test, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, launchBrowser, waitFor, serverProblems, nodeClient as harnessNodeClient } from '../lib/harness.js'
import { startPageServer } from '../lib/page-server.js'

const backend = process.env.YLAMBDA_BACKEND || 'embedded'
const SYNC_MS = 120000

let browser
let web
let server
const contexts = new Set()
const nodeClients = new Set()

before(async () => {
  web = await startPageServer()
  browser = await launchBrowser()
  server = await startServer({ env: { YLAMBDA_BACKEND: backend } })
})

afterEach(async () => {
  for (const c of nodeClients) c.destroy()
  nodeClients.clear()
  await Promise.all([...contexts].map((c) => c.close().catch(() => {})))
  contexts.clear()
})

after(async () => {
  try { if (browser) await browser.close() } catch {}
  try { if (web) await web.close() } catch {}
  if (server) {
    const problems = serverProblems(server)
    if (problems.length) process.stderr.write(`ylambda dev logged warnings/errors:\n${problems.join('\n')}\n`)
    await server.stop()
  }
})

let roomCounter = 0
const roomName = (prefix) =>
  `${prefix}-${backend}-${process.pid}-${++roomCounter}-${Math.random().toString(36).slice(2, 8)}`

/** A y-websocket page in a browser context of its own; `call(fn, ...args)` runs window.ylambdaDocs[fn]. */
const openDocsPage = async (name) => {
  const context = await browser.newContext()
  contexts.add(context)
  const page = await context.newPage()
  const logs = []
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`))
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`))
  await page.goto(`${web.url}docs`)
  const call = (fn, ...args) => page.evaluate(([fn, args]) => window.ylambdaDocs[fn](...args), [fn, args])
  return { name, call, logs }
}

const connectPage = async (p, room) => {
  await p.call('connect', { server: server.url, room })
  await waitFor(() => p.call('synced'), SYNC_MS, async () =>
    `${p.name} synced (connections: ${JSON.stringify(await p.call('connections'))}; logs: ${p.logs.slice(-5).join(' | ')})`)
}

/** `chars` characters of mixed text, as the page builds it (page/docs.js). */
const mixedText = (chars) => {
  const words = ['plain ', 'ascii ', 'Grüße ', 'naïve ', '世界 ', 'データ ', '✓ ', '🚀 ', '\n']
  let out = ''
  for (let i = 0; out.length < chars; i++) out += words[(i * 7 + (i >> 3)) % words.length]
  return out.slice(0, chars)
}

/** A Node y-websocket client (harness.js), destroyed after each test. */
const nodeClient = (room) => {
  const client = harnessNodeClient(server, room)
  nodeClients.add(client)
  return client
}

const assertNeverDisconnected = async (p) => {
  const c = await p.call('connections')
  assert.equal(c.sockets, 1, `${p.name} opened one connection only: ${JSON.stringify(c)}`)
  assert.deepEqual(c.closes, [], `${p.name} was never disconnected`)
}

test('a page pastes 1 MB of mixed text: a second page and a fresh Node client get it all', async (t) => {
  const room = roomName('browser-paste')
  const a = await openDocsPage('a')
  const b = await openDocsPage('b')
  await connectPage(a, room)
  await connectPage(b, room)
  const chars = 1024 * 1024
  t.diagnostic(`paste update: ${await a.call('paste', chars)} bytes`)
  const expected = await a.call('expected', chars)
  await waitFor(async () => (await b.call('length')) === chars, SYNC_MS,
    async () => `b has the paste (b has ${await b.call('length')} chars)`)
  assert.equal(await b.call('digest'), expected)
  const fresh = nodeClient(room)
  await waitFor(() => fresh.text.length === chars, SYNC_MS, () => `the Node client has ${fresh.text.length} of ${chars} chars`)
  await assertNeverDisconnected(a)
  await assertNeverDisconnected(b)
})

test('a page with a 5 MB document built offline connects and syncs: a second page and a fresh Node client get it all', async (t) => {
  const room = roomName('browser-offline')
  const writer = await openDocsPage('writer')
  const chars = 5 * 1024 * 1024
  t.diagnostic(`offline state: ${await writer.call('buildOffline', chars)} bytes`)
  await connectPage(writer, room)
  const expected = await writer.call('digest')
  const reader = await openDocsPage('reader')
  await connectPage(reader, room)
  await waitFor(async () => (await reader.call('length')) === chars, SYNC_MS,
    async () => `the second page has ${await reader.call('length')} of ${chars} chars`)
  assert.equal(await reader.call('digest'), expected)
  const fresh = nodeClient(room)
  await waitFor(() => fresh.text.length === chars, SYNC_MS, () => `the Node client has ${fresh.text.length} of ${chars} chars`)
  await assertNeverDisconnected(writer)
  await assertNeverDisconnected(reader)
})

test('a 20 MB document written in 5 MB pastes reaches a fresh page in messages the browser takes', async (t) => {
  const room = roomName('browser-20mb')
  const writer = nodeClient(room)
  const check = nodeClient(room)
  await waitFor(() => writer.synced() && check.synced(), SYNC_MS, 'the Node clients synced')
  const chunk = 5 * 1024 * 1024
  const content = mixedText(4 * chunk)
  // One paste at a time, each in the server's document (a second client has it) before the next:
  // every message stays under YLAMBDA_MAX_ASSEMBLED_BYTES (16 MiB).
  for (let i = 0; i < 4; i++) {
    writer.text.insert(writer.text.length, content.slice(i * chunk, (i + 1) * chunk))
    await waitFor(() => check.text.length === (i + 1) * chunk, SYNC_MS,
      () => `paste ${i + 1}: the second Node client has ${check.text.length} of ${(i + 1) * chunk} chars`)
  }
  t.diagnostic(`document state: ${Y.encodeStateAsUpdate(writer.doc).length} bytes`)
  const reader = await openDocsPage('reader')
  await connectPage(reader, room)
  await waitFor(async () => (await reader.call('length')) === content.length, SYNC_MS,
    async () => `the fresh page has ${await reader.call('length')} of ${content.length} chars`)
  assert.equal(await reader.call('digest'), await reader.call('expected', content.length))
  await assertNeverDisconnected(reader)
})

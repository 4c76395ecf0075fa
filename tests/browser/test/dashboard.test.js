// The dashboard page (`GET /dashboard` of `ylambda dev`) in headless Chromium: the connection
// count of a room goes 0 -> 2 -> 1 as Node y-websocket clients join and leave, and its live view
// shows a text edit. Screenshots go to target/test-artifacts/browser/ (kept by CI as artifacts).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, launchBrowser, waitFor, serverProblems, nodeClient as harnessNodeClient } from '../lib/harness.js'

const backend = process.env.YLAMBDA_BACKEND || 'embedded'
const artifacts = resolve(dirname(fileURLToPath(import.meta.url)), '../../../target/test-artifacts/browser')
mkdirSync(artifacts, { recursive: true })
const artifact = (name) => resolve(artifacts, `${backend}-${name}`)

let browser
let server
const clients = new Set()

before(async () => {
  browser = await launchBrowser()
  server = await startServer({ env: { YLAMBDA_BACKEND: backend } })
})

after(async () => {
  for (const c of clients) c.destroy()
  try { if (browser) await browser.close() } catch {}
  if (server) {
    const problems = serverProblems(server)
    if (problems.length) process.stderr.write(`ylambda dev logged warnings/errors:\n${problems.join('\n')}\n`)
    await server.stop()
  }
})

const httpUrl = () => server.url.replace(/^ws:/, 'http:')

/** A Node y-websocket client (harness.js), destroyed at the end. */
const nodeClient = (room) => {
  const client = harnessNodeClient(server, room)
  const destroy = client.destroy
  client.destroy = () => { clients.delete(client); destroy() }
  clients.add(client)
  return client
}

test('the dashboard shows a room go 0 -> 2 -> 1 connections and its document live', async () => {
  const room = `dashboard-${backend}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const context = await browser.newContext()
  const page = await context.newPage()
  const logs = []
  page.on('console', (m) => logs.push(`[console.${m.type()}] ${m.text()}`))
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`))
  try {
    await page.goto(`${httpUrl()}/dashboard?room=${encodeURIComponent(room)}`)
    const count = () => page.evaluate((room) => {
      const row = [...document.querySelectorAll('#rooms tbody tr')].find((r) => r.dataset.room === room)
      return row ? Number(row.querySelector('td.connections').textContent) : null
    }, room)
    await waitFor(async () => (await page.textContent('#status')) === 'live', 20000,
      () => `the dashboard's event stream is live (${logs.join(' | ')})`)
    assert.equal(await count(), 0, 'the selected room starts with nobody')
    await page.screenshot({ path: artifact('dashboard-0.png') })

    const a = nodeClient(room)
    const b = nodeClient(room)
    await waitFor(() => a.synced() && b.synced(), 20000, 'both Node clients synced')
    await waitFor(async () => (await count()) === 2, 20000, async () => `2 connections shown (shows ${await count()})`)
    await page.screenshot({ path: artifact('dashboard-2.png') })

    a.text.insert(0, 'hello dashboard')
    await waitFor(async () => (await page.textContent('#view')).includes('hello dashboard'), 20000,
      async () => `the live view shows the edit (shows ${await page.textContent('#view')})`)
    assert.deepEqual(JSON.parse(await page.textContent('#view')), { text: 'hello dashboard' })

    b.destroy()
    await waitFor(async () => (await count()) === 1, 20000, async () => `1 connection shown (shows ${await count()})`)
    await page.screenshot({ path: artifact('dashboard-1.png'), fullPage: true })
    assert.equal(await page.getAttribute('#total', 'data-total'), '1')
  } finally {
    await context.close()
  }
})

// The pixel-board example (examples/pixel-board, served by `ylambda dev` at /examples/) in
// headless Chromium: two pages see each other's clicks live, and a page opened later draws the
// board from the cached HTTP state before its WebSocket syncs. Needs the example built
// (scripts/browser-tests.sh runs `npm ci && npm run build` in examples/pixel-board).
// Screenshots go to target/test-artifacts/browser/.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, launchBrowser, waitFor, serverProblems } from '../lib/harness.js'

const backend = process.env.YLAMBDA_BACKEND || 'embedded'
const here = dirname(fileURLToPath(import.meta.url))
const examples = resolve(here, '../../../examples')
const artifacts = resolve(here, '../../../target/test-artifacts/browser')
mkdirSync(artifacts, { recursive: true })

let browser
let server
const contexts = new Set()

before(async () => {
  if (!existsSync(resolve(examples, 'pixel-board/dist/board.js'))) {
    throw new Error('examples/pixel-board is not built: cd examples/pixel-board && npm ci && npm run build')
  }
  browser = await launchBrowser()
  server = await startServer({ env: { YLAMBDA_BACKEND: backend, YLAMBDA_EXAMPLES_DIR: examples } })
})

after(async () => {
  await Promise.all([...contexts].map((c) => c.close().catch(() => {})))
  try { if (browser) await browser.close() } catch {}
  if (server) {
    const problems = serverProblems(server)
    if (problems.length) process.stderr.write(`ylambda dev logged warnings/errors:\n${problems.join('\n')}\n`)
    await server.stop()
  }
})

/** A board page in a browser context of its own. */
const openBoard = async (name, room) => {
  const context = await browser.newContext()
  contexts.add(context)
  const page = await context.newPage()
  const logs = []
  page.on('console', (m) => logs.push(`[${name} console.${m.type()}] ${m.text()}`))
  page.on('pageerror', (e) => logs.push(`[${name} pageerror] ${e.message}`))
  const base = server.url.replace(/^ws:/, 'http:')
  await page.goto(`${base}/examples/pixel-board/?room=${encodeURIComponent(room)}`)
  await waitFor(() => page.evaluate(() => window.board && window.board.synced()), 30000,
    () => `${name} synced (${logs.slice(-5).join(' | ')})`)
  const pixel = (x, y) => page.evaluate(([x, y]) => window.board.pixel(x, y), [x, y])
  // The canvas is 512 CSS pixels for 64 board pixels: the middle of pixel (x, y).
  const click = (x, y) => page.click('#board', { position: { x: x * 8 + 4, y: y * 8 + 4 } })
  return { name, page, pixel, click, logs }
}

test('two pixel-board pages see each other\'s clicks; a later page loads the board over HTTP', async () => {
  const room = `pixels-${backend}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const a = await openBoard('a', room)
  const b = await openBoard('b', room)
  assert.equal(await a.page.evaluate(() => window.board.state.status), 404, 'a new board has no state yet')

  await a.click(10, 20)
  await waitFor(async () => (await b.pixel(10, 20)) === '#ef4444', 20000, 'b sees a\'s click')
  await b.page.evaluate(() => window.board.color('#3b82f6'))
  await b.click(30, 40)
  await waitFor(async () => (await a.pixel(30, 40)) === '#3b82f6', 20000, 'a sees b\'s click')
  await a.page.screenshot({ path: resolve(artifacts, `${backend}-pixel-board-a.png`) })
  await b.page.screenshot({ path: resolve(artifacts, `${backend}-pixel-board-b.png`) })

  const c = await openBoard('c', room)
  const state = await c.page.evaluate(() => window.board.state)
  assert.equal(state.status, 200, 'the later page read the state over HTTP')
  assert.ok(state.bytes > 0)
  assert.equal(await c.pixel(10, 20), '#ef4444')
  assert.equal(await c.pixel(30, 40), '#3b82f6')
})

/**
 * Helpers for the browser tests: start / stop `ylambda dev`, launch Debian's Chromium through
 * playwright-core, open test pages (each in its own browser context), poll with deadlines.
 *
 * Only processes started here are ever signalled: the `ylambda dev` children by their handle
 * (SIGINT, then SIGKILL), the browsers through playwright-core's own `browser.close()` (and its
 * exit handler kills browsers it launched if this process dies first). Starting and stopping the
 * server and the polling loops are shared with the end-to-end suite (../../lib/server.mjs).
 */
import { rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { ylambdaWebSocket } from 'ylambda-client'
import * as dev from '../../lib/server.mjs'

const browserDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const verbose = !!process.env.BROWSER_TEST_VERBOSE

/** The server binary: $YLAMBDA_BIN (relative to tests/browser), else ../../target/debug/ylambda. */
export const serverBin = () => dev.serverBin(browserDir)

/** Debian's Chromium (scripts/install-chromium.sh); $CHROMIUM_PATH overrides. */
export const chromiumPath = () => process.env.CHROMIUM_PATH || '/usr/bin/chromium'

// ------------------------------------------------------------------------------------------------
// waiting

/**
 * Polls `condition` until it returns a truthy value (returned) or `timeoutMs` passes (throws).
 * @template T
 * @param {() => T | Promise<T>} condition
 * @param {number} timeoutMs
 * @param {string | (() => string | Promise<string>)} what described in the timeout error
 * @return {Promise<T>}
 */
export const waitFor = (condition, timeoutMs, what) => dev.waitFor(condition, timeoutMs, what, 50)

/**
 * A bounded wait for something that must NOT happen: polls `condition` for `ms` and throws if it
 * ever becomes truthy.
 */
export const never = (condition, ms, what) => dev.never(condition, ms, what, 50)

// ------------------------------------------------------------------------------------------------
// ylambda dev

/**
 * Starts `ylambda dev --listen 127.0.0.1:0 --data-dir DIR` and resolves once it printed
 * `ylambda dev listening on ws://127.0.0.1:PORT`.
 *
 * @param {{ env?: Record<string, string>, timeoutMs?: number }} [opts]
 */
export const startServer = async ({ env = {}, timeoutMs = 30000 } = {}) => {
  const bin = dev.existingServerBin(browserDir)
  const { workDir, dataDir } = await dev.freshDataDir('ylambda-browser-')
  let d
  try {
    d = await dev.startDev({
      bin,
      dataDir,
      env,
      timeoutMs,
      keepChars: 200000,
      onOutput: (chunk) => { if (verbose) process.stderr.write(chunk) }
    })
  } catch (err) {
    await rm(workDir, { recursive: true, force: true })
    throw err
  }
  return {
    proc: d.proc,
    workDir,
    url: d.url,
    alive: d.alive,
    /** Everything the server printed so far (stdout + stderr, last 200 kB). */
    log: d.output,
    /** SIGINT, then SIGKILL after `graceMs`; resolves with how it exited. */
    async stop (graceMs = 15000) {
      await d.stop(graceMs)
      await rm(workDir, { recursive: true, force: true })
      return d.exited()
    }
  }
}

/** Log lines of a server that look like trouble (WARN / ERROR / panics). */
export const serverProblems = (server) =>
  server.log().split('\n').filter((l) => /\b(WARN|ERROR)\b|panicked|Error:/.test(l))

// ------------------------------------------------------------------------------------------------
// Chromium

/**
 * Launches Debian's Chromium, headless. The networking flags keep it from calling Google
 * (background networking, component updates, sync, QUIC): this machine reaches nothing but
 * loopback, and the tests must not try. The pages add no STUN/TURN servers either
 * (page/page.js), so WebRTC only ever uses this machine's own addresses.
 */
export const launchBrowser = async () => {
  const executablePath = chromiumPath()
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} not found: run \`bash scripts/install-chromium.sh\` (or set CHROMIUM_PATH)`)
  }
  return chromium.launch({
    executablePath,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // WebRTC host candidates as plain addresses instead of random `<uuid>.local` names: those
      // are resolved with multicast DNS (224.0.0.251:5353 on every interface), traffic that
      // would leave loopback. With real addresses the two peers talk to this machine's own
      // addresses, which the kernel delivers locally.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // and on a machine whose only interface is loopback, let WebRTC use it
      '--allow-loopback-in-peer-connection'
    ]
  })
}

/**
 * @typedef {object} Peer
 * @property {string} name
 * @property {import('playwright-core').BrowserContext} context
 * @property {import('playwright-core').Page} page
 * @property {string[]} logs  console messages and page errors
 * @property {number} clientID
 * @property {(fn: string, ...args: any[]) => Promise<any>} call  window.ylambdaTest[fn](...args)
 */

/**
 * Opens the test page in a NEW browser context (pages of one context share BroadcastChannel and
 * storage, and y-webrtc would sync them without any WebRTC) and starts a WebrtcProvider in it.
 *
 * @param {import('playwright-core').Browser} browser
 * @param {string} pageUrl
 * @param {{ name: string, room: string, signaling: string, password?: string }} opts
 * @return {Promise<Peer>}
 */
export const openPeer = async (browser, pageUrl, { name, room, signaling, password }) => {
  const context = await browser.newContext()
  const page = await context.newPage()
  const logs = []
  const note = (line) => {
    logs.push(line)
    if (verbose) process.stderr.write(line + '\n')
  }
  page.on('console', (m) => note(`[${name} console.${m.type()}] ${m.text()}`))
  page.on('pageerror', (e) => note(`[${name} pageerror] ${e.message}`))
  page.on('crash', () => note(`[${name}] PAGE CRASHED`))
  await page.goto(pageUrl)
  const call = (fn, ...args) => page.evaluate(([fn, args]) => window.ylambdaTest[fn](...args), [fn, args])
  const clientID = await call('start', { room, signaling, password })
  await waitFor(() => call('ready'), 10000, `${name}: provider room open`)
  return { name, context, page, logs, clientID, call }
}

/** Everything useful to print when a test fails. */
export const describePeers = async (peers, server) => {
  const parts = []
  for (const p of peers) {
    let state
    try {
      state = JSON.stringify({
        peers: await p.call('peers'),
        text: await p.call('text'),
        awareness: await p.call('awareness'),
        peerEvents: await p.call('peerEvents'),
        candidates: await p.call('candidates'),
        webrtcStats: await p.call('webrtcStats')
      }, null, 1)
    } catch (err) {
      state = `(unavailable: ${err.message})`
    }
    parts.push(`--- ${p.name}: ${state}\n${p.logs.slice(-30).join('\n')}`)
  }
  if (server) parts.push(`--- server log (last 4 kB):\n${server.log().slice(-4000)}`)
  return parts.join('\n')
}

// ------------------------------------------------------------------------------------------------
// Node clients

/**
 * A Node y-websocket client over Node's built-in WebSocket (which, like a browser, sends every
 * message as one frame), through the ylambda-client adapter. The caller destroys it.
 * @param {{ url: string }} server
 * @param {string} room
 */
export const nodeClient = (server, room) => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(server.url, room, doc, {
    WebSocketPolyfill: /** @type {any} */ (ylambdaWebSocket({ WebSocket: globalThis.WebSocket })),
    disableBc: true
  })
  return {
    doc,
    text: doc.getText('text'),
    synced: () => provider.wsconnected && provider.synced,
    destroy () { provider.destroy(); doc.destroy() }
  }
}

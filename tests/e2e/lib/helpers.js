/**
 * Helpers for the end-to-end suite: start / stop `ylambda dev`, y-websocket providers that go
 * through the ylambda-client adapter, raw `ws` clients, and polling waits.
 *
 * Every server and provider made here is tracked and torn down by `cleanup()` (each test file
 * calls it in an `after` hook), and servers still alive when the process exits or is
 * interrupted are killed. Only processes started here are ever signalled. Starting and stopping
 * the server and the polling loops are shared with the browser suite (../../lib/server.mjs).
 */
import { rm, open } from 'node:fs/promises'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as delay } from 'node:timers/promises'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { ylambdaWebSocket } from 'ylambda-client'
import * as dev from '../../lib/server.mjs'

export { Y, WebSocket, delay }

const e2eDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** The server binary: $YLAMBDA_BIN, else ../../target/debug/ylambda relative to tests/e2e. */
export const serverBin = () => dev.serverBin(e2eDir)
/** `E2E_PATIENCE`: how much slower than usual the backend under test is (1: not slower). */
export const patience = dev.patience

const verbose = !!process.env.E2E_VERBOSE
const keep = !!process.env.YLAMBDA_E2E_KEEP

// 100 providers each add a process 'exit' listener (y-websocket): not a leak
process.setMaxListeners(0)

/** @type {Set<Server>} */
const servers = new Set()
/** @type {Set<Client>} */
const clients = new Set()
/** @type {Set<RawClient>} */
const raws = new Set()
/** @type {Set<string>} */
const workDirs = new Set()

// ------------------------------------------------------------------------------------------------
// waiting

/**
 * Polls `condition` until it returns a truthy value (returned) or `timeoutMs` passes (throws).
 *
 * @template T
 * @param {() => T | Promise<T>} condition
 * @param {number} [timeoutMs]
 * @param {string | (() => string)} [what] described in the timeout error
 * @return {Promise<T>}
 */
export const waitFor = (condition, timeoutMs = 10000, what) =>
  dev.waitFor(condition, timeoutMs, what || condition.toString(), 20)

/**
 * Like `waitFor`, for work that drains at the speed of a slow backend (a single-threaded AWS
 * emulator): waits as long as `progress()` keeps rising, and fails when it has not risen for
 * `stallMs` or when `capMs` passes. A lost message shows as a stall; a slow emulator does not.
 *
 * @param {() => boolean} condition
 * @param {() => number} progress a count that rises while the work advances
 * @param {{ stallMs: number, capMs: number }} limits
 * @param {string | (() => string)} what
 */
export const waitWhileProgressing = async (condition, progress, { stallMs, capMs }, what) => {
  const started = Date.now()
  let best = progress()
  let advancedAt = started
  for (;;) {
    if (await condition()) return
    const now = Date.now()
    const current = progress()
    if (current > best) {
      best = current
      advancedAt = now
    }
    if (now - advancedAt > stallMs || now - started > capMs) {
      const why = now - started > capMs ? `${capMs} ms passed` : `no progress for ${stallMs} ms`
      const desc = typeof what === 'function' ? what() : what
      throw new Error(`gave up (${why}) waiting for: ${desc}`)
    }
    await delay(100)
  }
}

/**
 * A bounded wait for something that must NOT happen: polls `condition` for `ms` and throws if it
 * ever becomes truthy.
 *
 * @param {() => any} condition
 * @param {number} ms
 * @param {string | (() => string)} what
 */
export const never = (condition, ms, what) => dev.never(condition, ms, what, 25)

// ------------------------------------------------------------------------------------------------
// server

/**
 * @typedef {object} Server
 * @property {import('node:child_process').ChildProcess} proc
 * @property {number} port
 * @property {string} url ws://127.0.0.1:PORT
 * @property {string} httpUrl http://127.0.0.1:PORT
 * @property {string} dataDir
 * @property {string} logPath
 * @property {() => boolean} alive
 * @property {() => Promise<{ code: number | null, signal: string | null }>} stop SIGINT, wait
 * @property {() => Promise<{ code: number | null, signal: string | null }>} exited
 */

/**
 * Starts `ylambda dev --listen 127.0.0.1:PORT --data-dir DIR` and resolves once it printed
 * `ylambda dev listening on ws://127.0.0.1:PORT`.
 *
 * @param {object} [opts]
 * @param {Record<string, string>} [opts.env] extra environment (YLAMBDA_MAX_MESSAGE_BYTES, ...)
 * @param {string} [opts.dataDir] reuse a data directory (restart); default: a fresh temp dir
 * @param {number} [opts.port] listen on this port (restart on the same address); default 0
 * @param {number} [opts.timeoutMs]
 * @param {'dev' | 'serve'} [opts.command] `serve`: the direct mode (stock clients, binary frames)
 * @return {Promise<Server>}
 */
export const startServer = async ({ env = {}, dataDir, port = 0, timeoutMs = 30000, command = 'dev' } = {}) => {
  const bin = dev.existingServerBin(e2eDir)
  let workDir
  if (dataDir === undefined) {
    ({ workDir, dataDir } = await dev.freshDataDir('ylambda-e2e-'))
    workDirs.add(workDir)
  } else {
    workDir = dirname(dataDir)
  }
  const logPath = join(workDir, `server-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.log`)
  const log = await open(logPath, 'a')
  const d = await dev.startDev({
    bin,
    dataDir,
    port,
    env,
    timeoutMs,
    command,
    keepChars: 20000,
    onOutput: (chunk) => {
      log.write(chunk).catch(() => {})
      if (verbose) process.stderr.write(chunk)
    },
    onExit: () => { log.close().catch(() => {}) }
  })
  /** @type {Server} */
  const server = {
    proc: d.proc,
    port: d.port,
    url: d.url,
    httpUrl: `http://127.0.0.1:${d.port}`,
    dataDir,
    logPath,
    alive: d.alive,
    logTail: d.output,
    exited: d.exited,
    stop: (timeout = 20000) => d.stop(timeout)
  }
  servers.add(server)
  return server
}

// ------------------------------------------------------------------------------------------------
// y-websocket providers through the adapter

/**
 * @typedef {object} Client
 * @property {Y.Doc} doc
 * @property {Y.Text} text  doc.getText('text')
 * @property {WebsocketProvider} provider
 * @property {{ count: number, sockets: any[] }} connections  every socket the provider opened
 * @property {Array<{ status: string, at: number }>} statuses
 * @property {Array<{ code: number | string, reason: string, at: number }>} closes  ('local' = closed by the provider)
 * @property {() => void} destroy
 */

/**
 * A y-websocket WebsocketProvider on `server` in `room`, through ylambda-client and `ws`.
 * BroadcastChannel is disabled so that clients in one process only meet through the server.
 *
 * @param {Server | { url: string }} server
 * @param {string} room
 * @param {object} [opts]
 * @param {Record<string, string>} [opts.params]
 * @param {Y.Doc} [opts.doc]
 * @param {boolean} [opts.connect]
 * @param {any} [opts.user] local awareness field `user`
 * @param {number} [opts.maxBackoffTime]
 * @param {'ws' | 'builtin' | 'stock'} [opts.socket] the WebSocket under the adapter: the `ws`
 *   package (it fragments long messages), or Node's built-in one (`node --experimental-websocket`
 *   on Node 20), which, like a browser, sends every message as one frame; `stock`: `ws` with no
 *   adapter at all (binary frames, the room in the path), for `ylambda serve`
 * @return {Client}
 */
export const makeClient = (server, room, { params = {}, doc = new Y.Doc(), connect = true, user, maxBackoffTime = 1000, socket = 'ws', protocols = [] } = {}) => {
  const connections = { count: 0, sockets: /** @type {any[]} */ ([]) }
  if (socket === 'builtin' && typeof globalThis.WebSocket !== 'function') {
    throw new Error('no built-in WebSocket: run node with --experimental-websocket (Node 20)')
  }
  const Base = socket === 'stock'
    ? WebSocket
    : ylambdaWebSocket({ WebSocket: socket === 'builtin' ? globalThis.WebSocket : WebSocket })
  class CountingSocket extends Base {
    constructor (...args) {
      super(...args)
      connections.count++
      connections.sockets.push(this)
    }
  }
  const statuses = []
  const closes = []
  const provider = new WebsocketProvider(server.url, room, doc, {
    WebSocketPolyfill: /** @type {any} */ (CountingSocket),
    params,
    protocols,
    connect: false,
    disableBc: true,
    maxBackoffTime
  })
  provider.on('status', ({ status }) => statuses.push({ status, at: Date.now() }))
  // event null: closed by the provider itself (disconnect(), or its 30 s no-message watchdog)
  provider.on('connection-close', (event) => closes.push(event
    ? { code: event.code, reason: event.reason, at: Date.now() }
    : { code: 'local', reason: 'closed by y-websocket itself', at: Date.now() }))
  if (user !== undefined) provider.awareness.setLocalStateField('user', user)
  const client = /** @type {Client} */ ({
    doc,
    text: doc.getText('text'),
    provider,
    connections,
    statuses,
    closes,
    destroyed: false,
    destroy () {
      if (client.destroyed) return
      client.destroyed = true
      clients.delete(client)
      provider.destroy()
      doc.destroy()
    }
  })
  clients.add(client)
  if (connect) provider.connect()
  return client
}

/** Resolves once the provider is connected and synced. */
export const synced = (client, timeoutMs = 10000) =>
  waitFor(() => client.provider.wsconnected && client.provider.synced, timeoutMs,
    `client of room ${client.provider.roomname} connected and synced`)

/** Makes a client and waits until it is synced (`timeoutMs` as in `synced`). */
export const syncedClient = async (server, room, opts, timeoutMs) => {
  const c = makeClient(server, room, opts)
  await synced(c, timeoutMs)
  return c
}

/**
 * Aborts a client's connection without a close handshake and without the awareness removal that
 * `destroy()` sends, and stops it from reconnecting: what a crashed browser tab looks like.
 */
export const crashClient = (client) => {
  client.provider.shouldConnect = false
  const ws = client.provider.ws
  // the adapter's underlying socket, or a stock client's `ws` itself
  const raw = ws && (ws.rawSocket ?? ws)
  if (raw && typeof raw.terminate === 'function') raw.terminate()
}

// ------------------------------------------------------------------------------------------------
// raw ws clients

/**
 * @typedef {object} RawClient
 * @property {WebSocket} ws
 * @property {string[]} texts        every text frame received
 * @property {Buffer[]} binaries     every binary frame received
 * @property {() => Uint8Array[]} decoded  text frames decoded from base64
 * @property {() => any[]} json      text frames parsed as JSON (unparsable ones skipped)
 * @property {{ code: number, reason: string } | null} closeInfo
 * @property {Promise<{ code: number, reason: string }>} closed
 * @property {(bytes: Uint8Array) => void} sendMessage   base64 text frame
 * @property {(obj: any) => void} sendJson
 * @property {(text: string, frameBytes?: number) => void} sendFragmented  one message, several frames
 */

/**
 * The URL of a raw connection: `query` (e.g. `?room=X`, or '') after the base URL's path, with no
 * slash added after a stage: `ws://127.0.0.1:4001` + `?room=X` is `ws://127.0.0.1:4001/?room=X`,
 * `wss://abc.execute-api.eu-west-1.amazonaws.com/prod` + `?room=X` is `…/prod?room=X` (the URL
 * the adapter makes for y-websocket, too).
 *
 * @param {string} base
 * @param {string} query
 */
export const socketUrl = (base, query) => {
  const u = new URL(base)
  const path = u.pathname.replace(/\/+$/, '') || '/'
  return `${u.protocol}//${u.host}${path}${query}`
}

/**
 * A raw `ws` connection to `socketUrl(server.url, query)` (query e.g. `?room=X`), resolved once
 * open.
 *
 * @param {Server | { url: string }} server
 * @param {string} [query] e.g. '?room=x'
 * @return {Promise<RawClient>}
 */
export const rawClient = async (server, query = '', protocols = undefined) => {
  const ws = new WebSocket(socketUrl(server.url, query), protocols)
  /** @type {RawClient} */
  const c = /** @type {any} */ ({ ws, texts: [], binaries: [], closeInfo: null, errors: [] })
  raws.add(c)
  c.closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      c.closeInfo = { code, reason: reason.toString() }
      raws.delete(c)
      resolve(c.closeInfo)
    })
  })
  ws.on('message', (data, isBinary) => {
    if (isBinary) c.binaries.push(/** @type {Buffer} */ (data))
    else c.texts.push(data.toString())
  })
  ws.on('error', (err) => c.errors.push(err))
  c.decoded = () => c.texts.map((t) => new Uint8Array(Buffer.from(t, 'base64')))
  c.json = () => c.texts.flatMap((t) => { try { return [JSON.parse(t)] } catch { return [] } })
  c.sendMessage = (bytes) => ws.send(Buffer.from(bytes).toString('base64'))
  c.sendJson = (obj) => ws.send(JSON.stringify(obj))
  // one text message in frames of at most frameBytes (as API Gateway requires above 32 KB)
  c.sendFragmented = (text, frameBytes = 32768) => {
    for (let i = 0; i < text.length; i += frameBytes) {
      ws.send(text.slice(i, i + frameBytes), { binary: false, fin: i + frameBytes >= text.length })
    }
  }
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
    ws.once('close', (code) => reject(new Error(`closed (${code}) before open`)))
  })
  return c
}

// ------------------------------------------------------------------------------------------------
// y-websocket protocol bytes

export const messageSync = 0
export const messageAwareness = 1
export const messageAuth = 2
export const messageQueryAwareness = 3

/** messageSync + sync step 1 for `doc`. */
export const syncStep1 = (doc) => {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, messageSync)
  syncProtocol.writeSyncStep1(e, doc)
  return encoding.toUint8Array(e)
}

/** messageSync + update. */
export const syncUpdate = (update) => {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, messageSync)
  syncProtocol.writeUpdate(e, update)
  return encoding.toUint8Array(e)
}

/** messageAwareness + encodeAwarenessUpdate(awareness, clients). */
export const awarenessMessage = (awareness, clientIds) => {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, messageAwareness)
  encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, clientIds))
  return encoding.toUint8Array(e)
}

/**
 * Describes a y-websocket message (for assertions and diagnostics).
 * @param {Uint8Array} bytes
 */
export const describeMessage = (bytes) => {
  const d = decoding.createDecoder(bytes)
  const type = decoding.readVarUint(d)
  if (type === messageSync) return { type: 'sync', syncType: decoding.readVarUint(d), payload: decoding.readVarUint8Array(d) }
  if (type === messageAwareness) return { type: 'awareness', payload: decoding.readVarUint8Array(d) }
  if (type === messageAuth) {
    // y-protocols/auth: permission type (0 = denied), then the reason
    return decoding.readVarUint(d) === 0 ? { type: 'auth', reason: decoding.readVarString(d) } : { type: 'auth' }
  }
  if (type === messageQueryAwareness) return { type: 'query-awareness' }
  return { type: 'unknown:' + type }
}

/** Applies every sync step 2 / update that a raw client received to `doc`. */
export const applyReceived = (raw, doc) => {
  for (const bytes of raw.decoded()) {
    try {
      const m = describeMessage(bytes)
      if (m.type === 'sync' && m.syncType !== 0) Y.applyUpdate(doc, m.payload)
    } catch {}
  }
}

export { encoding, decoding, syncProtocol, awarenessProtocol }

// ------------------------------------------------------------------------------------------------
// management API

/**
 * An HTTP request to the dev server (management API).
 * @param {Server} server
 * @param {string} method
 * @param {string} path
 * @param {string | Uint8Array} [body]
 */
export const http = async (server, method, path, body) => {
  const res = await fetch(server.httpUrl + path, { method, body })
  return { status: res.status, text: await res.text() }
}

// ------------------------------------------------------------------------------------------------
// teardown

/** Destroys every client and raw connection, stops every server (SIGINT, then SIGKILL). */
export const cleanup = async () => {
  for (const c of [...clients]) {
    try { c.destroy() } catch {}
  }
  for (const r of [...raws]) {
    try { r.ws.terminate() } catch {}
  }
  await Promise.all([...servers].map(async (s) => {
    try { await s.stop() } catch {}
    servers.delete(s)
  }))
  if (!keep) {
    await Promise.all([...workDirs].map((d) => rm(d, { recursive: true, force: true })))
    workDirs.clear()
  }
}

/** `chars` characters of mixed ASCII and non-ASCII text (2- and 3-byte UTF-8, and emoji). */
export const mixedText = (chars) => {
  const words = ['plain ', 'ascii ', 'Grüße ', 'naïve ', '世界 ', 'データ ', '✓ ', '🚀 ', '\n']
  let out = ''
  for (let i = 0; out.length < chars; i++) out += words[(i * 7 + (i >> 3)) % words.length]
  return out.slice(0, chars)
}

/** A unique room name. */
let roomCounter = 0
export const roomName = (prefix = 'room') => `${prefix}-${process.pid}-${++roomCounter}-${Math.random().toString(36).slice(2, 8)}`

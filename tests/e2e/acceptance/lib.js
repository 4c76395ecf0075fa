/**
 * The acceptance suite's configuration and clients: everything it needs is a deployed stage's
 * URL (and, for a stage with access control, a token source). It starts no server.
 *
 * | environment | meaning |
 * | --- | --- |
 * | `YLAMBDA_URL` (required) | the stage: `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` (or `ws://127.0.0.1:4001`) |
 * | `YLAMBDA_TOKEN_RW`, `YLAMBDA_TOKEN_RO` | given tokens (`access` rw / ro) whose `room`/`rooms` claim covers `YLAMBDA_ROOM_PREFIX*` |
 * | `YLAMBDA_AUTH_SECRET` | else: the stage's HS256 secret; rw and ro tokens for `YLAMBDA_ROOM_PREFIX{run}*` are minted here |
 * | `YLAMBDA_ROOM_PREFIX` | prefix of every room and signaling topic (default `acceptance-`) |
 * | `E2E_PATIENCE` | multiplies every wait for something that must happen (default 1) |
 *
 * With a token source every connection carries the rw token (`?token=`), and the access-control
 * cases run; without one the stage is taken to be open and those cases are skipped.
 *
 * Providers, raw connections and the polling waits are the end-to-end suite's (../lib/helpers.js),
 * pointed at the URL instead of a server of their own.
 */
import { SignJWT } from 'jose'
import * as authProtocol from 'y-protocols/auth'
import {
  makeClient, synced as syncedWithin, rawClient, messageAuth, waitFor, never, cleanup, Y
} from '../lib/helpers.js'

export { waitFor, never, cleanup, Y }

const usage = 'set YLAMBDA_URL to the stage URL, e.g. wss://abc.execute-api.us-east-1.amazonaws.com/prod'

const parseUrl = (raw) => {
  if (!raw) throw new Error(`YLAMBDA_URL is not set: ${usage}`)
  let u
  try {
    u = new URL(raw)
  } catch {
    throw new Error(`YLAMBDA_URL is not a URL (${JSON.stringify(raw)}): ${usage}`)
  }
  if (u.protocol !== 'wss:' && u.protocol !== 'ws:') throw new Error(`YLAMBDA_URL must be ws:// or wss://, not ${u.protocol}: ${usage}`)
  if (u.search || u.hash) throw new Error(`YLAMBDA_URL must have no query or fragment: ${raw}`)
  return raw.replace(/\/+$/, '')
}

/** The stage URL, without a trailing slash. */
export const url = parseUrl(process.env.YLAMBDA_URL)
/** What the clients take for a server: only its URL. */
export const stage = { url }

/** Deadlines (ms) for what must happen; a deployed stage has 50-200 ms round trips and cold starts. */
export const T = {
  /** connect ($connect, possibly a cold start) and sync step 1/2 */
  sync: 30000,
  /** an edit, awareness change or signaling publish reaching another client */
  relay: 20000,
  /** a 1 MB paste: ~45 pieces of 32 KB, each its own message */
  large: 180000,
  /** how long something that must not happen is watched for */
  quiet: 3000
}

export const prefix = process.env.YLAMBDA_ROOM_PREFIX || 'acceptance-'
/** Unique per test file run: every room and topic name starts with `${prefix}${run}-`. */
export const run = `${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`
let counter = 0
/** A fresh room (or topic) name: `acceptance-{run}-{what}-{n}`. */
export const roomName = (what) => `${prefix}${run}-${what}-${++counter}`

/**
 * The token source: given tokens (`YLAMBDA_TOKEN_RW` / `YLAMBDA_TOKEN_RO`) win over
 * `YLAMBDA_AUTH_SECRET`; with neither there are no tokens (`kind: 'none'`).
 *
 * @return {Promise<{ kind: 'tokens' | 'secret' | 'none', rw: string | null, ro: string | null, describe: string }>}
 */
const tokenSource = async () => {
  const { YLAMBDA_TOKEN_RW: rw, YLAMBDA_TOKEN_RO: ro, YLAMBDA_AUTH_SECRET: secret } = process.env
  if (rw || ro) {
    if (!rw) throw new Error('YLAMBDA_TOKEN_RO is set without YLAMBDA_TOKEN_RW: the read-only case needs a writer')
    return {
      kind: 'tokens',
      rw,
      ro: ro || null,
      describe: `given tokens (YLAMBDA_TOKEN_RW${ro ? ', YLAMBDA_TOKEN_RO' : ''}), which must open ${prefix}*`
    }
  }
  if (secret) {
    const key = new TextEncoder().encode(secret)
    const mint = (access) => new SignJWT({ rooms: [`${prefix}${run}-*`], access, sub: 'ylambda-acceptance' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(key)
    return { kind: 'secret', rw: await mint('rw'), ro: await mint('ro'), describe: `HS256 tokens minted with YLAMBDA_AUTH_SECRET for ${prefix}${run}-*` }
  }
  return { kind: 'none', rw: null, ro: null, describe: 'none (the stage is taken to be open)' }
}

export const auth = await tokenSource()

/** Why an access-control case cannot run here, or false. */
export const skipAuth = (needs = 'rw') => {
  if (auth.kind === 'none') return 'no token source: set YLAMBDA_AUTH_SECRET, or YLAMBDA_TOKEN_RW and YLAMBDA_TOKEN_RO (see tests/e2e/README.md)'
  if (needs === 'ro' && !auth.ro) return 'no read-only token: set YLAMBDA_TOKEN_RO (access: ro) next to YLAMBDA_TOKEN_RW'
  return false
}

/** `?name=value&…` of the defined entries, '' if none. */
export const query = (params) => {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null)
  return entries.length === 0 ? '' : '?' + new URLSearchParams(entries).toString()
}

/**
 * A y-websocket provider (through ylambda-client) on the stage, carrying the rw token unless
 * `token` says otherwise (`null`: none). Options as the end-to-end suite's `makeClient`.
 *
 * Permission-denied messages are collected in `client.denials` instead of y-websocket's console
 * warning, which prints the URL and with it the token.
 */
export const provider = (room, { token = auth.rw, params = {}, ...opts } = {}) => {
  const client = makeClient(stage, room, { ...opts, params: token ? { ...params, token } : params })
  client.token = token
  client.denials = []
  client.provider.messageHandlers[messageAuth] =
    (_encoder, decoder) => authProtocol.readAuthMessage(decoder, client.doc, (_doc, reason) => client.denials.push(reason))
  return client
}

/** What a refusal (401 / 403) of a connection with `token` to `room` means here. */
const hint = (status, token, room) => {
  if (status === 401) {
    return token
      ? 'the token is not accepted (another secret or key, expired, or no room claim)'
      : 'the stage wants a token: set YLAMBDA_AUTH_SECRET, or YLAMBDA_TOKEN_RW and YLAMBDA_TOKEN_RO'
  }
  if (status === 403 && !room) return 'a read-only token cannot signal'
  return `the token does not open ${room} (its room patterns must cover ${prefix}*)`
}

/**
 * Waits until a provider is connected and synced. If it is not by the deadline, one more
 * connection attempt with its room and token says why when the stage refuses it (401: no or a bad
 * token, 403: a token for other rooms).
 */
export const synced = async (client, timeoutMs = T.sync) => {
  try {
    await syncedWithin(client, timeoutMs)
  } catch (err) {
    const answer = await refusal({ room: client.provider.roomname, token: client.token })
    if (typeof answer !== 'number') throw err
    throw new Error(`${err.message}: the stage refuses its connection with ${answer}: ${hint(answer, client.token, client.provider.roomname)}`)
  }
}

/** A provider, once synced. */
export const syncedProvider = async (room, opts) => {
  const c = provider(room, opts)
  await synced(c)
  return c
}

/**
 * A raw `ws` connection to the stage with query `params` (plus the rw token unless `token` says
 * otherwise), resolved once open.
 */
export const raw = async (params = {}, { token = auth.rw } = {}) => {
  try {
    return await rawClient(stage, query({ ...params, token }))
  } catch (err) {
    const m = /Unexpected server response: (40[13])/.exec(String(err && err.message))
    if (!m) throw err
    throw new Error(`the stage refused a connection${params.room ? ` to ${params.room}` : ' for signaling'} with ${m[1]}: ${hint(Number(m[1]), token, params.room)}`)
  }
}

/**
 * The HTTP status a connection attempt with query `params` is refused with at the handshake, or
 * 'accepted' (the connection is closed again at once).
 */
export const refusal = async (params) => {
  try {
    const c = await rawClient(stage, query(params))
    c.ws.close()
    return 'accepted'
  } catch (err) {
    const m = /Unexpected server response: (\d+)/.exec(String(err && err.message))
    return m ? Number(m[1]) : String(err)
  }
}


// Access control with an identity provider's keys, through `ylambda dev`'s real $connect path
// and real y-websocket clients: RS256 key pairs made here with `jose`, their public halves served
// as a JWKS by a node http server on 127.0.0.1 (YLAMBDA_AUTH_JWKS_URL), with YLAMBDA_AUTH_ISSUER
// and YLAMBDA_AUTH_AUDIENCE set. Each test starts its own JWKS endpoint and server, so one test's
// refetches cannot use up another's refetch window (one per 30 s per process).
//
// With YLAMBDA_LAMBDAS_DIR set, `ylambda dev` runs the connect Lambda binaries, which inherit the
// JWKS settings and keep one key cache per process; the exact fetch counts are checked only in
// process, where there is one cache.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { generateKeyPair, exportJWK, SignJWT } from 'jose'
import {
  startServer, cleanup, syncedClient, makeClient, rawClient, waitFor, roomName
} from '../lib/helpers.js'

const ISSUER = 'https://idp.e2e.example/'
const AUDIENCE = 'ylambda-e2e'
const inProcess = !process.env.YLAMBDA_LAMBDAS_DIR
// Connect Lambda processes in the --lambdas mode, each with its own cache.
const processes = Number(process.env.YLAMBDA_LAMBDA_CONCURRENCY || 2)

/** @type {import('node:http').Server[]} */
const endpoints = []
after(async () => {
  await cleanup()
  for (const http of endpoints) {
    http.closeAllConnections()
    await new Promise((resolve) => http.close(resolve))
  }
})

/**
 * A JWKS endpoint on 127.0.0.1: serves `state.keys` (the test changes them as it goes) and
 * counts the requests it gets.
 */
const jwksEndpoint = async (keys) => {
  const state = { keys: keys.map((k) => k.jwk), requests: 0 }
  const http = createServer((_req, res) => {
    state.requests++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ keys: state.keys }))
  })
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve))
  endpoints.push(http)
  const { port } = /** @type {import('node:net').AddressInfo} */ (http.address())
  return { state, http, url: `http://127.0.0.1:${port}/.well-known/jwks.json` }
}

/** An RS256 key pair of the identity provider's, and its JWK as the JWKS lists it. */
const signingKey = async (kid) => {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } }
}

/** A token signed with `key`: issuer and audience right unless overridden (null: left out). */
const mint = (key, claims, { kid = key.kid, iss = ISSUER, aud = AUDIENCE, exp = '5m' } = {}) => {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).setIssuedAt().setExpirationTime(exp)
  if (iss) jwt = jwt.setIssuer(iss)
  if (aud) jwt = jwt.setAudience(aud)
  return jwt.sign(key.privateKey)
}

/** A JWKS endpoint serving `keys` and a `ylambda dev` that checks tokens against it. */
const setup = async (keys) => {
  const jwks = await jwksEndpoint(keys)
  const server = await startServer({
    env: { YLAMBDA_AUTH_JWKS_URL: jwks.url, YLAMBDA_AUTH_ISSUER: ISSUER, YLAMBDA_AUTH_AUDIENCE: AUDIENCE }
  })
  return { jwks, server }
}

/** The HTTP status a raw connection attempt is refused with, or 'accepted'. */
const refusal = async (server, room, token) => {
  const query = `?room=${encodeURIComponent(room)}` + (token === undefined ? '' : `&token=${token}`)
  try {
    const raw = await rawClient(server, query)
    raw.ws.close()
    return 'accepted'
  } catch (err) {
    const m = /Unexpected server response: (\d+)/.exec(String(err && err.message))
    return m ? Number(m[1]) : String(err)
  }
}

test('an RS256 token from the JWKS opens its room, and providers sync through it', async () => {
  const key = await signingKey('e2e-2025-1')
  const { jwks, server } = await setup([key])
  const room = roomName('jwks')
  const a = await syncedClient(server, room, { params: { token: await mint(key, { room, sub: 'a' }) } })
  const b = await syncedClient(server, room, { params: { token: await mint(key, { rooms: ['jwks-*'], sub: 'b' }) } })
  a.text.insert(0, 'signed by the identity provider')
  await waitFor(() => b.text.toString() === 'signed by the identity provider', 10000, 'b sees a\'s edit')
  b.text.insert(0, '> ')
  await waitFor(() => a.text.toString() === '> signed by the identity provider', 10000, 'a sees b\'s edit')
  if (inProcess) assert.equal(jwks.state.requests, 1, 'the JWKS is fetched once, then cached')
  else assert.ok(jwks.state.requests >= 1 && jwks.state.requests <= processes, `${jwks.state.requests} fetches`)
})

test('a wrong issuer or audience, another key, or an HS256 token made with the public key is refused at $connect', async () => {
  const key = await signingKey('e2e-2025-1')
  const impostor = await signingKey('e2e-2025-1') // same kid, not the provider's key
  const { server } = await setup([key])
  const room = roomName('jwks')
  const now = Math.floor(Date.now() / 1000)
  const hsWithPublicKey = await new SignJWT({ room })
    .setProtectedHeader({ alg: 'HS256', kid: key.kid })
    .setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m')
    .sign(new TextEncoder().encode(key.jwk.n))
  for (const [what, token, status] of [
    ['no token', undefined, 401],
    ['wrong issuer', await mint(key, { room }, { iss: 'https://evil.example/' }), 401],
    ['no issuer', await mint(key, { room }, { iss: null }), 401],
    ['wrong audience', await mint(key, { room }, { aud: 'another-app' }), 401],
    ['no audience', await mint(key, { room }, { aud: null }), 401],
    ['expired', await mint(key, { room }, { exp: now - 10 }), 401],
    ['signed by another key', await mint(impostor, { room }), 401],
    ['HS256 with the public key as secret', hsWithPublicKey, 401],
    ['for another room', await mint(key, { room: 'elsewhere' }), 403],
    ['valid', await mint(key, { room }), 'accepted']
  ]) {
    assert.equal(await refusal(server, room, token), status, what)
  }

  // A stock provider with a wrong-issuer token is refused every time it tries: it never opens,
  // never syncs, never sees the room's text.
  const writer = await syncedClient(server, room, { params: { token: await mint(key, { room }) } })
  writer.text.insert(0, 'members only')
  const outsider = makeClient(server, room, {
    params: { token: await mint(key, { room }, { iss: 'https://evil.example/' }) }
  })
  await waitFor(() => outsider.closes.length >= 2, 15000, 'the outsider was refused, and refused again on retry')
  assert.equal(outsider.statuses.some((s) => s.status === 'connected'), false)
  assert.equal(outsider.provider.synced, false)
  assert.equal(outsider.text.toString(), '')
  outsider.destroy()
})

test('a key rotated into the JWKS while the server runs is picked up', async () => {
  const first = await signingKey('2025-01')
  const second = await signingKey('2025-02')
  const { jwks, server } = await setup([first])
  const room = roomName('jwks-rotate')
  const a = await syncedClient(server, room, { params: { token: await mint(first, { room }) } })
  const before = jwks.state.requests
  // The provider publishes a new key and starts signing with it.
  jwks.state.keys = [first.jwk, second.jwk]
  const b = await syncedClient(server, room, { params: { token: await mint(second, { room }) } })
  a.text.insert(0, 'rotated')
  await waitFor(() => b.text.toString() === 'rotated', 10000, 'the client with the new key syncs')
  if (inProcess) assert.equal(jwks.state.requests, before + 1, 'one refetch, for the unknown kid')
  else assert.ok(jwks.state.requests > before, 'the new kid made a fetch')
  // Tokens signed with the old key still work.
  assert.equal(await refusal(server, room, await mint(first, { room })), 'accepted')
})

test('tokens with made-up kids are refused without hammering the JWKS endpoint', async () => {
  const key = await signingKey('real')
  const attacker = await signingKey('attacker')
  const { jwks, server } = await setup([key])
  const room = roomName('jwks-storm')
  assert.equal(await refusal(server, room, await mint(key, { room })), 'accepted')
  const before = jwks.state.requests
  const forged = await Promise.all(Array.from({ length: 20 }, (_, i) => mint(attacker, { room }, { kid: `forged-${i}` })))
  const results = await Promise.all(forged.map((token) => refusal(server, room, token)))
  assert.deepEqual(results, forged.map(() => 401))
  const fetches = jwks.state.requests - before
  // In process: one refetch for all of them. Lambda processes: at most a first load and one
  // refetch each.
  if (inProcess) assert.equal(fetches, 1)
  else assert.ok(fetches <= 2 * processes, `${fetches} fetches for 20 forged kids`)
  assert.equal(await refusal(server, room, await mint(key, { room })), 'accepted')
})

test('a JWKS endpoint that is down refuses tokens with 401, and the server stays up', async () => {
  const key = await signingKey('k')
  const { jwks, server } = await setup([key])
  jwks.http.closeAllConnections()
  await new Promise((resolve) => jwks.http.close(resolve))
  const room = roomName('jwks-down')
  assert.equal(await refusal(server, room, await mint(key, { room })), 401)
  assert.equal(await refusal(server, room, await mint(key, { room })), 401)
  assert.ok(server.alive(), 'the server is still running')
  await waitFor(() => /cannot fetch the JWKS/.test(server.logTail()), 10000, 'the reason is logged')
})

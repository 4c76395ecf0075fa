// The deployment check, scripts/acceptance.sh, run as an operator would against a stage: here a
// `ylambda dev` with access control on (YLAMBDA_AUTH_SECRET), on a stage path (/prod), so every
// acceptance case runs and none is skipped. Also: its usage errors, a failing check making it
// exit nonzero, and the access-control cases being skipped (with the reason) without a token
// source.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startServer, cleanup } from '../lib/helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
const script = resolve(here, '../../../scripts/acceptance.sh')
const SECRET = 'e2e acceptance secret, long enough for HS256'
/** Every acceptance case (tests/e2e/acceptance/*.test.js). */
const CASES = 7

let secured
let open
before(async () => {
  secured = await startServer({ env: { YLAMBDA_AUTH_SECRET: SECRET } })
  open = await startServer()
})
after(cleanup)

/** The environment of an operator's shell: no stage, tokens or secret unless given. */
const operatorEnv = (extra = {}) => {
  const env = { ...process.env, ...extra }
  for (const name of ['YLAMBDA_URL', 'YLAMBDA_TOKEN_RW', 'YLAMBDA_TOKEN_RO', 'YLAMBDA_ROOM_PREFIX']) delete env[name]
  if (!('YLAMBDA_AUTH_SECRET' in extra)) delete env.YLAMBDA_AUTH_SECRET
  return env
}

/**
 * Runs `bash scripts/acceptance.sh ...args`; resolves with its exit code and output. Killed
 * (its process group, which it leads) if it runs past `timeoutMs`.
 */
const runScript = (args, env, timeoutMs = 150000) => new Promise((resolve, reject) => {
  const proc = spawn('bash', [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (chunk) => { stdout += chunk })
  proc.stderr.on('data', (chunk) => { stderr += chunk })
  const timer = setTimeout(() => {
    try { process.kill(-proc.pid, 'SIGKILL') } catch {}
  }, timeoutMs)
  proc.on('error', reject)
  proc.on('exit', (code, signal) => {
    clearTimeout(timer)
    resolve({ code, signal, stdout, stderr })
  })
})

/** The counts of node --test's summary (`ℹ tests 7`, `ℹ pass 7`, ...). */
const summary = (out) => Object.fromEntries([...out.matchAll(/^[ℹ#] (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)]
  .map(([, name, n]) => [name, Number(n)]))

test('usage errors: no URL, a URL that is not ws(s)://, a URL with a query', async () => {
  for (const args of [[], ['http://127.0.0.1:4001'], [`${open.url}/prod?token=x`]]) {
    const r = await runScript(args, operatorEnv(), 20000)
    assert.equal(r.code, 2, `exit 2 for ${JSON.stringify(args)}: ${r.stderr}`)
    assert.match(r.stderr, /acceptance: .*\n(.|\n)*usage: scripts\/acceptance\.sh URL|takes no query/, `says why: ${r.stderr}`)
    assert.equal(r.stdout, '', 'runs nothing')
  }
  const help = await runScript(['--help'], operatorEnv(), 20000)
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^usage: scripts\/acceptance\.sh URL/)
})

test('against a ylambda dev stage with access control: every acceptance case runs and passes', { timeout: 170000 }, async (t) => {
  const started = Date.now()
  const url = `${secured.url}/prod`
  const r = await runScript([url], operatorEnv({ YLAMBDA_AUTH_SECRET: SECRET }))
  t.diagnostic(`scripts/acceptance.sh took ${Date.now() - started} ms`)
  assert.equal(r.code, 0, `exit 0\n${r.stdout}\n${r.stderr}`)
  assert.deepEqual(summary(r.stdout), { tests: CASES, pass: CASES, fail: 0, cancelled: 0, skipped: 0, todo: 0 }, r.stdout)
  assert.equal(r.stdout.match(/^✔ /gm)?.length, CASES, `${CASES} passed cases listed\n${r.stdout}`)
  assert.match(r.stdout, new RegExp(`stage: +${url.replace(/[.]/g, '\\.')}\n`), 'names the stage')
  assert.match(r.stdout, /tokens: minted with YLAMBDA_AUTH_SECRET/)
  assert.match(r.stdout, new RegExp(`^acceptance: ${CASES} checks, ${CASES} passed, 0 failed, 0 skipped\nacceptance: PASSED against `, 'm'))
  assert.ok(!r.stdout.includes('eyJ') && !r.stderr.includes('eyJ'), 'no token is printed')
  assert.ok(secured.alive(), 'the stage is still up')
})

test('a failing check makes the script fail: tokens against a stage without access control', async () => {
  // the open stage accepts a connection without a token: the 401 check fails, and so does the run
  const r = await runScript([open.url, '--test-name-pattern', 'no token'], operatorEnv({ YLAMBDA_AUTH_SECRET: SECRET }), 60000)
  assert.equal(r.code, 1, `exit 1\n${r.stdout}\n${r.stderr}`)
  assert.match(r.stdout, /✖ access control: no token/)
  assert.match(r.stdout, /AssertionError.*: a document connection without a token/)
  assert.match(r.stdout, /acceptance: FAILED against /)
})

test('without a token source the access-control cases are skipped, saying why', async () => {
  // with the signaling case, so that something runs (a run that checks nothing fails)
  const r = await runScript([open.url, '--test-name-pattern', 'access control|signaling'], operatorEnv(), 60000)
  assert.equal(r.code, 0, `exit 0\n${r.stdout}\n${r.stderr}`)
  assert.match(r.stdout, /tokens: none: the stage is taken to be open, the access-control checks are skipped/)
  const skips = r.stdout.split('\n').filter((line) => /access control: .*# no token source: set YLAMBDA_AUTH_SECRET/.test(line))
  assert.equal(skips.length, 2, `both access-control cases skipped with the reason\n${r.stdout}`)
  assert.equal(r.stdout.split('\n').filter((line) => /^  skipped: access control: .*# SKIP no token source/.test(line)).length, 2,
    `the tally repeats why\n${r.stdout}`)
  assert.match(r.stdout, new RegExp(`^acceptance: ${CASES} checks, 1 passed, 0 failed, ${CASES - 1} skipped$`, 'm'))
})

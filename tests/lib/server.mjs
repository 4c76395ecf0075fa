/**
 * What both JavaScript suites need, written once: the end-to-end suite (tests/e2e/lib/helpers.js)
 * and the browser suite (tests/browser/lib/harness.js) import it by relative path and wrap it in
 * their own `startServer`, `waitFor` and `never`.
 *
 * - `startDev` starts `ylambda dev` as a child process and resolves once it printed its first
 *   line, `ylambda dev listening on ws://127.0.0.1:PORT` (within a deadline); it keeps the last
 *   part of the server's output and stops it with SIGINT, then SIGKILL.
 * - `waitFor` / `never` poll with a deadline.
 *
 * Node's own modules only: each suite installs its own node_modules and this folder has none. It
 * is `.mjs` because no package.json above it says `"type": "module"` (both suites are ESM).
 *
 * Only processes started here are ever signalled, by their handle; those still running when the
 * test process exits or is interrupted are killed.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

// ------------------------------------------------------------------------------------------------
// waiting

/** A wait's description: `what`, or what the function `what` returns. */
const describe = async (what) => (typeof what === 'function' ? await what() : what)

/**
 * `E2E_PATIENCE` (default 1) multiplies every `waitFor` deadline: a slower backend (single-threaded
 * moto serving the DynamoDB doc store, ~5 requests per update) needs longer, never different,
 * answers. Waits for something that must not happen (`never`) are not scaled.
 */
export const patience = Math.max(1, Number(process.env.E2E_PATIENCE) || 1)

/**
 * Polls `condition` every `everyMs` until it returns a truthy value (returned) or `timeoutMs`
 * passes (throws).
 *
 * @template T
 * @param {() => T | Promise<T>} condition
 * @param {number} timeoutMs
 * @param {string | (() => string | Promise<string>)} what described in the timeout error
 * @param {number} everyMs
 * @return {Promise<T>}
 */
export const waitFor = async (condition, timeoutMs, what, everyMs) => {
  timeoutMs *= patience
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await condition()
    if (value) return value
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${await describe(what)}`)
    }
    await delay(everyMs)
  }
}

/**
 * A bounded wait for something that must NOT happen: polls `condition` every `everyMs` for `ms`
 * and throws if it ever becomes truthy.
 *
 * @param {() => any} condition
 * @param {number} ms
 * @param {string | (() => string | Promise<string>)} what
 * @param {number} everyMs
 */
export const never = async (condition, ms, what, everyMs) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await condition()) throw new Error(`must not happen, but did: ${await describe(what)}`)
    await delay(everyMs)
  }
}

// ------------------------------------------------------------------------------------------------
// ylambda dev

/**
 * The server binary, `$YLAMBDA_BIN` (else ../../target/debug/ylambda) resolved against the
 * suite's folder `suiteDir`.
 * @param {string} suiteDir
 */
export const serverBin = (suiteDir) => resolve(suiteDir, process.env.YLAMBDA_BIN || '../../target/debug/ylambda')

/** `serverBin(suiteDir)`, or an error saying it is missing. */
export const existingServerBin = (suiteDir) => {
  const bin = serverBin(suiteDir)
  if (!existsSync(bin)) throw new Error(`server binary not found: ${bin} (set YLAMBDA_BIN)`)
  return bin
}

/**
 * A fresh temporary folder `<tmp>/<prefix>XXXXXX` with an empty `data` folder in it.
 * @param {string} prefix
 * @return {Promise<{ workDir: string, dataDir: string }>}
 */
export const freshDataDir = async (prefix) => {
  const workDir = await mkdtemp(join(tmpdir(), prefix))
  const dataDir = join(workDir, 'data')
  await mkdir(dataDir)
  return { workDir, dataDir }
}

/** Every `ylambda dev` started here that has not exited yet. */
const running = new Set()

const killLeftovers = () => {
  for (const proc of running) {
    if (proc.exitCode === null && proc.signalCode === null) {
      try { proc.kill('SIGKILL') } catch {}
    }
  }
}
process.on('exit', killLeftovers)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killLeftovers()
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1))
  })
}

/**
 * @typedef {object} DevServer
 * @property {import('node:child_process').ChildProcess} proc
 * @property {number} port
 * @property {string} url ws://127.0.0.1:PORT
 * @property {() => boolean} alive
 * @property {() => string} output  the last `keepChars` characters it printed (stdout + stderr)
 * @property {() => Promise<{ code: number | null, signal: string | null }>} exited
 * @property {(graceMs: number) => Promise<{ code: number | null, signal: string | null }>} stop
 *   SIGINT, then SIGKILL if it still runs after `graceMs`; resolves with how it exited
 */

/**
 * Starts `BIN dev --listen 127.0.0.1:PORT --data-dir DATA_DIR` and resolves once it printed
 * `ylambda dev listening on ws://127.0.0.1:PORT`. If it exits first or does not print that line
 * within `timeoutMs`, it is killed (SIGKILL) and the promise rejects with its output so far.
 *
 * @param {object} opts
 * @param {string} opts.bin
 * @param {string} opts.dataDir
 * @param {number} [opts.port] 0: any free port
 * @param {Record<string, string>} [opts.env] added to this process's environment
 * @param {number} [opts.timeoutMs]
 * @param {number} [opts.keepChars] how much of its output `output()` keeps
 * @param {(chunk: Buffer) => void} [opts.onOutput] each chunk of its output, as it comes
 * @param {() => void} [opts.onExit] called when it exits, before `exited()` resolves
 * @param {string} [opts.command] `dev` (default) or `serve` (direct mode)
 * @return {Promise<DevServer>}
 */
export const startDev = async ({
  bin, dataDir, port = 0, env = {}, timeoutMs = 30000, keepChars = 20000, onOutput = () => {}, onExit = () => {}, command = 'dev'
}) => {
  const proc = spawn(bin, [command, '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(proc)
  let tail = ''
  const remember = (chunk) => {
    tail = (tail + chunk.toString()).slice(-keepChars)
    onOutput(chunk)
  }
  proc.stderr.on('data', remember)
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      running.delete(proc)
      onExit()
      resolve({ code, signal })
    })
  })
  const alive = () => proc.exitCode === null && proc.signalCode === null
  const listening = new Promise((resolve, reject) => {
    let out = ''
    let found = false
    proc.stdout.on('data', (chunk) => {
      remember(chunk)
      if (found) return
      out += chunk.toString()
      const m = /ylambda (?:dev|serve) listening on ws:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m) {
        found = true
        resolve(Number(m[1]))
      }
    })
    proc.on('error', reject)
    exited.then(({ code, signal }) => {
      if (!found) reject(new Error(`ylambda dev exited (code ${code}, signal ${signal}) before listening:\n${tail}`))
    })
  })
  let timer
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`ylambda dev did not print its listening line within ${timeoutMs} ms:\n${tail}`)), timeoutMs)
  })
  let listeningPort
  try {
    listeningPort = await Promise.race([listening, timeout])
  } catch (err) {
    if (alive()) proc.kill('SIGKILL')
    await exited
    throw err
  } finally {
    clearTimeout(timer)
  }
  return {
    proc,
    port: listeningPort,
    url: `ws://127.0.0.1:${listeningPort}`,
    alive,
    output: () => tail,
    exited: () => exited,
    async stop (graceMs) {
      if (alive()) {
        proc.kill('SIGINT')
        const t = setTimeout(() => { if (alive()) proc.kill('SIGKILL') }, graceMs)
        await exited
        clearTimeout(t)
      }
      return exited
    }
  }
}

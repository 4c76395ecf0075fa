import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { ylambdaWebSocket, toYlambdaUrl, encodeBase64, decodeBase64, splitIntoPieces } from '../index.js'

/** A stand-in for `ws` / a browser WebSocket that records what the adapter does. */
class FakeWebSocket {
  static instances = []
  constructor (url, protocols, options) {
    this.url = url
    this.protocols = protocols
    this.options = options
    this.argCount = arguments.length
    this.sent = []
    this.readyState = 0
    this.bufferedAmount = 0
    this.binaryType = 'blob'
    this.listeners = {}
    this.closedWith = null
    FakeWebSocket.instances.push(this)
  }

  addEventListener (type, fn) { (this.listeners[type] ||= []).push(fn) }
  emit (type, event = {}) { for (const fn of this.listeners[type] || []) fn({ type, ...event }) }
  send (data) { this.sent.push(data) }
  close (...args) { this.closedWith = args; this.readyState = 2 }
}

/** Like the `ws` package: send(data, options, cb) and terminate(). */
class FakeNodeWebSocket extends FakeWebSocket {
  send (data, options, cb) { this.sent.push(options === undefined ? data : { data, ...options }) }
  terminate () {}
}

const make = (url = 'wss://abc.execute-api.eu-west-1.amazonaws.com/prod/my-room', protocols = []) => {
  const WS = ylambdaWebSocket({ WebSocket: FakeWebSocket })
  const socket = new WS(url, protocols)
  return { socket, raw: socket.rawSocket }
}

/** y-websocket 3.x builds its URL this way (see WebsocketProvider#url, lib0/url.encodeQueryParams). */
const yWebsocketUrl = (serverUrl, roomname, params = {}) => {
  const q = Object.entries(params).map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&')
  return serverUrl + '/' + roomname + (q.length === 0 ? '' : '?' + q)
}

describe('toYlambdaUrl', () => {
  test('moves the room into ?room= and keeps the API Gateway stage', () => {
    assert.equal(
      toYlambdaUrl('wss://abc.execute-api.eu-west-1.amazonaws.com/prod/my-room'),
      'wss://abc.execute-api.eu-west-1.amazonaws.com/prod?room=my-room'
    )
  })

  test('keeps a multi-segment base path', () => {
    assert.equal(toYlambdaUrl('wss://example.com/a/b/prod/doc1'), 'wss://example.com/a/b/prod?room=doc1')
  })

  test('a server without a stage gets the root path', () => {
    assert.equal(toYlambdaUrl('ws://127.0.0.1:4001/r1'), 'ws://127.0.0.1:4001/?room=r1')
  })

  test('keeps existing query parameters', () => {
    const out = new URL(toYlambdaUrl(yWebsocketUrl('wss://h.example/prod', 'room-1', { readonly: '1', token: 'a b&c' })))
    assert.equal(out.pathname, '/prod')
    assert.equal(out.searchParams.get('room'), 'room-1')
    assert.equal(out.searchParams.get('readonly'), '1')
    assert.equal(out.searchParams.get('token'), 'a b&c')
    assert.deepEqual([...out.searchParams.keys()], ['room', 'readonly', 'token'])
  })

  test('room with spaces is decoded once and re-encoded as %20', () => {
    const s = toYlambdaUrl(yWebsocketUrl('wss://h.example/prod', 'my room'))
    assert.equal(s, 'wss://h.example/prod?room=my%20room')
    assert.equal(new URL(s).searchParams.get('room'), 'my room')
  })

  test('room with unicode survives', () => {
    const room = 'café 日本 🚀'
    const s = toYlambdaUrl(yWebsocketUrl('wss://h.example/prod', room))
    assert.equal(new URL(s).searchParams.get('room'), room)
    assert.equal(new URL(s).pathname, '/prod')
    assert.match(s, /^[\x21-\x7e]+$/, 'the URL is pure ASCII')
  })

  test('a pre-encoded room name (e.g. containing "/") is decoded', () => {
    const s = toYlambdaUrl(yWebsocketUrl('wss://h.example/prod', encodeURIComponent('team/a?b#c')))
    const u = new URL(s)
    assert.equal(u.searchParams.get('room'), 'team/a?b#c')
    assert.equal(u.pathname, '/prod')
  })

  test('a raw "%" that is not percent-encoding is kept literally', () => {
    assert.equal(new URL(toYlambdaUrl('wss://h.example/prod/100%')).searchParams.get('room'), '100%')
  })

  test('an existing room parameter is replaced, not duplicated', () => {
    const u = new URL(toYlambdaUrl('wss://h.example/prod/new?room=old&x=1'))
    assert.deepEqual(u.searchParams.getAll('room'), ['new'])
    assert.equal(u.searchParams.get('x'), '1')
  })

  test('a URL ending in "/" has no room segment and is left alone', () => {
    assert.equal(toYlambdaUrl('wss://h.example/prod/?room=r'), 'wss://h.example/prod/?room=r')
  })

  test('the adapter connects the underlying socket to the rewritten URL and passes protocols', () => {
    const { socket, raw } = make(yWebsocketUrl('ws://127.0.0.1:9/stage', 'x y', { readonly: '1' }), ['p1'])
    assert.equal(raw.url, 'ws://127.0.0.1:9/stage?room=x%20y&readonly=1')
    assert.equal(socket.url, raw.url)
    assert.deepEqual(raw.protocols, ['p1'])
    assert.equal(raw.argCount, 2)
  })
})

describe('base64', () => {
  test('round trip of random binary of many lengths equals the standard encoding', () => {
    for (let len = 0; len < 300; len++) {
      const bytes = new Uint8Array(randomBytes(len))
      const text = encodeBase64(bytes)
      assert.equal(text, Buffer.from(bytes).toString('base64'))
      assert.deepEqual(decodeBase64(text), bytes)
    }
  })

  test('large messages (>128 KiB) round trip', () => {
    const bytes = new Uint8Array(randomBytes(200 * 1024 + 3))
    assert.deepEqual(decodeBase64(encodeBase64(bytes)), bytes)
  })

  test('the browser path (no Buffer: btoa/atob) gives the same results', async () => {
    const saved = globalThis.Buffer
    let mod
    try {
      globalThis.Buffer = undefined
      mod = await import('../index.js?no-buffer')
    } finally {
      globalThis.Buffer = saved
    }
    for (const len of [0, 1, 2, 3, 4, 5, 255, 256, 70000]) {
      const bytes = new Uint8Array(randomBytes(len))
      const text = mod.encodeBase64(bytes)
      assert.equal(text, saved.from(bytes).toString('base64'))
      const back = mod.decodeBase64(text)
      assert.ok(!(back instanceof saved), 'plain Uint8Array')
      assert.deepEqual([...back], [...bytes])
    }
    assert.throws(() => mod.decodeBase64('not base64!'), SyntaxError)
  })

  test('decoding tolerates missing padding and the URL-safe alphabet', () => {
    assert.deepEqual([...decodeBase64('AAE')], [0, 1])
    assert.deepEqual([...decodeBase64('-_8')], [0xfb, 0xff])
  })

  test('decoding rejects non-base64 text', () => {
    for (const bad of ['{"type":"ping"}', 'abc!', 'A', 'QQ=', 'QUJD=', 'Q===']) {
      assert.throws(() => decodeBase64(bad), SyntaxError, bad)
    }
  })

  test('a decoded message does not alias a shared buffer pool', () => {
    const out = decodeBase64('AQID')
    assert.equal(out.byteOffset, 0)
    assert.equal(out.buffer.byteLength, 3)
  })
})

describe('YlambdaWebSocket', () => {
  test('send(Uint8Array) sends a base64 text frame of exactly the view', () => {
    const { socket, raw } = make()
    const backing = new Uint8Array([9, 9, 0, 1, 2, 255, 9])
    socket.send(backing.subarray(2, 6))
    assert.deepEqual(raw.sent, ['AAEC/w=='])
    assert.equal(typeof raw.sent[0], 'string')
  })

  test('send(ArrayBuffer) and send(string)', () => {
    const { socket, raw } = make()
    socket.send(new Uint8Array([0, 0, 1, 0]).buffer)
    socket.send('{"type":"ping"}')
    assert.deepEqual(raw.sent, ['AAABAA==', '{"type":"ping"}'])
    assert.throws(() => socket.send({}), TypeError)
  })

  test('with `ws` underneath, a message over 32 KB goes out in 32 KB frames (API Gateway frame limit)', () => {
    const WS = ylambdaWebSocket({ WebSocket: FakeNodeWebSocket })
    const socket = new WS('ws://127.0.0.1:1/r', [])
    const raw = socket.rawSocket
    raw.readyState = 1
    const bytes = new Uint8Array(randomBytes(60000)) // 80000 base64 chars
    socket.send(bytes)
    assert.deepEqual(raw.sent.map((f) => [f.data.length, f.fin, f.binary]), [[32768, false, false], [32768, false, false], [14464, true, false]])
    assert.equal(raw.sent.map((f) => f.data).join(''), Buffer.from(bytes).toString('base64'))
    // small messages stay single frames, sent without options
    raw.sent.length = 0
    socket.send(new Uint8Array(100))
    assert.equal(typeof raw.sent[0], 'string')
    // exactly 32768 characters is one frame
    raw.sent.length = 0
    socket.send(new Uint8Array(24576))
    assert.equal(typeof raw.sent[0], 'string')
    assert.equal(raw.sent[0].length, 32768)
  })

  test('maxFrameBytes is configurable; 0 disables fragmentation; non-ASCII strings are never cut', () => {
    const WS = ylambdaWebSocket({ WebSocket: FakeNodeWebSocket, maxFrameBytes: 10 })
    const socket = new WS('ws://127.0.0.1:1/r', [])
    socket.rawSocket.readyState = 1
    socket.send(new Uint8Array(12)) // 16 chars
    assert.deepEqual(socket.rawSocket.sent.map((f) => f.data.length), [10, 6])
    socket.rawSocket.sent.length = 0
    socket.send('ééééééééééééééé')
    assert.deepEqual(socket.rawSocket.sent, ['ééééééééééééééé'])
    // without fragmentation a long message goes out as pieces; without pieces too, whole
    const Off = ylambdaWebSocket({ WebSocket: FakeNodeWebSocket, maxFrameBytes: 0 })
    const off = new Off('ws://127.0.0.1:1/r', [])
    off.rawSocket.readyState = 1
    off.send(new Uint8Array(60000))
    assert.equal(off.rawSocket.sent.length, 3)
    assert.ok(off.rawSocket.sent.every((p) => typeof p === 'string' && p.startsWith('~1:')))
    const None = ylambdaWebSocket({ WebSocket: FakeNodeWebSocket, maxFrameBytes: 0, pieceBytes: 0 })
    const none = new None('ws://127.0.0.1:1/r', [])
    none.rawSocket.readyState = 1
    none.send(new Uint8Array(60000))
    assert.equal(none.rawSocket.sent.length, 1)
    assert.equal(typeof none.rawSocket.sent[0], 'string')
  })

  test('a browser-like socket (send(data) only) gets a long message as pieces that each fit a frame', () => {
    const { socket, raw } = make()
    raw.readyState = 1
    const bytes = new Uint8Array(randomBytes(60000)) // 80000 base64 chars
    socket.send(bytes)
    assert.equal(raw.sent.length, 3)
    const parsed = raw.sent.map((p) => {
      assert.ok(p.length <= 32768, `${p.length} chars`)
      const m = /^~1:([A-Za-z0-9]{1,32}):(\d+):(\d+):(.+)$/s.exec(p)
      assert.ok(m, p.slice(0, 40))
      return { id: m[1], index: Number(m[2]), count: Number(m[3]), data: m[4] }
    })
    assert.ok(parsed.every((p) => p.id === parsed[0].id && p.count === 3))
    assert.deepEqual(parsed.map((p) => p.index), [0, 1, 2])
    assert.equal(parsed.map((p) => p.data).join(''), Buffer.from(bytes).toString('base64'))
    // the next long message has another id; a message that fits a frame is sent as it is
    socket.send(new Uint8Array(60000))
    assert.notEqual(raw.sent[3].split(':')[1], parsed[0].id)
    raw.sent.length = 0
    socket.send(new Uint8Array(24576))
    assert.deepEqual(raw.sent.map((p) => p.length), [32768])
    assert.ok(!raw.sent[0].startsWith('~'))
  })

  test('with `ws` underneath, a message over 128 KB goes out as pieces, each one frame', () => {
    const WS = ylambdaWebSocket({ WebSocket: FakeNodeWebSocket })
    const socket = new WS('ws://127.0.0.1:1/r', [])
    socket.rawSocket.readyState = 1
    const bytes = new Uint8Array(randomBytes(200000))
    socket.send(bytes)
    const sent = socket.rawSocket.sent
    assert.ok(sent.length >= 9, `${sent.length} pieces`)
    assert.ok(sent.every((p) => typeof p === 'string' && p.startsWith('~1:') && p.length <= 32768))
    const data = sent.map((p) => p.split(':').slice(4).join(':')).join('')
    assert.equal(data, Buffer.from(bytes).toString('base64'))
  })

  test('splitIntoPieces sizes every header for the last index', () => {
    const text = 'A'.repeat(10000)
    for (const budget of [20, 64, 1000]) {
      const pieces = splitIntoPieces(text, 'id1', budget)
      assert.ok(pieces.every((p) => p.length <= budget), `${budget}`)
      assert.equal(pieces.map((p) => p.split(':')[4]).join(''), text)
      assert.ok(pieces.every((p) => p.split(':')[3] === String(pieces.length)))
    }
    assert.throws(() => splitIntoPieces(text, 'id1', 8), RangeError)
  })

  test('incoming base64 text is delivered to onmessage as an ArrayBuffer', () => {
    const { socket, raw } = make()
    const got = []
    socket.onmessage = (e) => got.push(e.data)
    const bytes = new Uint8Array(randomBytes(1000))
    raw.emit('message', { data: Buffer.from(bytes).toString('base64') })
    assert.equal(got.length, 1)
    assert.ok(got[0] instanceof ArrayBuffer)
    assert.deepEqual(new Uint8Array(got[0]), bytes)
  })

  test('incoming binary is passed through as ArrayBuffer', () => {
    const { socket, raw } = make()
    const got = []
    socket.addEventListener('message', (e) => got.push(e.data))
    raw.emit('message', { data: new Uint8Array([1, 2, 3]).buffer })
    raw.emit('message', { data: Buffer.from([4, 5]) })
    assert.deepEqual(got.map((b) => [...new Uint8Array(b)]), [[1, 2, 3], [4, 5]])
    assert.ok(got.every((b) => b instanceof ArrayBuffer))
  })

  test('incoming non-base64 text is reported via onerror and not delivered', () => {
    const { socket, raw } = make()
    const got = []
    const errors = []
    socket.onmessage = (e) => got.push(e)
    socket.onerror = (e) => errors.push(e)
    raw.emit('message', { data: 'this is not base64!' })
    raw.emit('message', { data: '' })
    assert.equal(got.length, 0)
    assert.equal(errors.length, 2)
    assert.equal(errors[0].data, 'this is not base64!')
  })

  test('binaryType is "arraybuffer" and the underlying socket is forced to arraybuffer', () => {
    const { socket, raw } = make()
    assert.equal(socket.binaryType, 'arraybuffer')
    assert.equal(raw.binaryType, 'arraybuffer')
    socket.binaryType = 'nodebuffer'
    const got = []
    socket.onmessage = (e) => got.push(e.data)
    raw.emit('message', { data: 'AQI=' })
    assert.ok(Buffer.isBuffer(got[0]))
    assert.deepEqual([...got[0]], [1, 2])
  })

  test('open, close and error pass through with their fields', () => {
    const { socket, raw } = make()
    const seen = []
    socket.onopen = (e) => seen.push(['open', e.target === socket])
    socket.onclose = (e) => seen.push(['close', e.code, e.reason, e.wasClean])
    socket.onerror = (e) => seen.push(['error', e.message])
    raw.readyState = 1
    raw.emit('open')
    assert.equal(socket.readyState, 1)
    raw.emit('error', { message: 'boom', error: new Error('boom') })
    raw.readyState = 3
    raw.emit('close', { code: 1009, reason: 'too big', wasClean: true })
    assert.deepEqual(seen, [['open', true], ['error', 'boom'], ['close', 1009, 'too big', true]])
    assert.equal(socket.readyState, 3)
  })

  test('close(), readyState, bufferedAmount and constants are forwarded', () => {
    const { socket, raw } = make()
    raw.bufferedAmount = 42
    assert.equal(socket.bufferedAmount, 42)
    assert.equal(socket.readyState, 0)
    socket.close(4000, 'bye')
    assert.deepEqual(raw.closedWith, [4000, 'bye'])
    const WS = ylambdaWebSocket({ WebSocket: FakeWebSocket })
    assert.deepEqual([WS.CONNECTING, WS.OPEN, WS.CLOSING, WS.CLOSED], [0, 1, 2, 3])
    assert.deepEqual([socket.CONNECTING, socket.OPEN, socket.CLOSING, socket.CLOSED], [0, 1, 2, 3])
  })

  test('addEventListener honours once and removeEventListener; a throwing handler does not stop others', async () => {
    const { socket, raw } = make()
    const seen = []
    const once = () => seen.push('once')
    const kept = () => seen.push('kept')
    const removed = () => seen.push('removed')
    socket.addEventListener('open', once, { once: true })
    socket.addEventListener('open', kept)
    socket.addEventListener('open', removed)
    socket.removeEventListener('open', removed)
    const uncaught = []
    const onUncaught = (err) => uncaught.push(err)
    process.prependListener('uncaughtException', onUncaught)
    const saved = process.listeners('uncaughtException').filter((l) => l !== onUncaught)
    for (const l of saved) process.off('uncaughtException', l)
    try {
      socket.onopen = () => { throw new Error('handler failed') }
      raw.emit('open')
      raw.emit('open')
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.off('uncaughtException', onUncaught)
      for (const l of saved) process.on('uncaughtException', l)
    }
    assert.deepEqual(seen, ['once', 'kept', 'kept'])
    assert.equal(uncaught.length, 2)
    assert.equal(uncaught[0].message, 'handler failed')
  })

  test('without any WebSocket implementation construction fails clearly', () => {
    const saved = globalThis.WebSocket
    try {
      globalThis.WebSocket = undefined
      const WS = ylambdaWebSocket()
      assert.throws(() => new WS('ws://127.0.0.1:1/r'), /no WebSocket implementation/)
    } finally {
      globalThis.WebSocket = saved
    }
  })

  test('defaults to globalThis.WebSocket', () => {
    const saved = globalThis.WebSocket
    try {
      globalThis.WebSocket = FakeWebSocket
      const WS = ylambdaWebSocket()
      const s = new WS('ws://127.0.0.1:1/r')
      assert.ok(s.rawSocket instanceof FakeWebSocket)
      assert.equal(s.rawSocket.argCount, 1)
    } finally {
      globalThis.WebSocket = saved
    }
  })
})

describe('refusals', () => {
  /** y-protocols permission-denied: [messageAuth, permissionDenied, varString reason]. */
  const denied = (reason) => {
    const text = new TextEncoder().encode(reason)
    return Buffer.from([2, 0, text.length, ...text]).toString('base64')
  }

  test('a permission-denied message is an error event, and the next connection to that URL waits, longer each time', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] })
    const WS = ylambdaWebSocket({ WebSocket: FakeWebSocket })
    const url = 'wss://h.example/prod/refused-room'
    const first = new WS(url)
    const errors = []
    const messages = []
    first.onerror = (e) => errors.push(e)
    first.onmessage = (e) => messages.push(e.data)
    first.rawSocket.emit('open')
    first.rawSocket.emit('message', { data: denied('ylambda: message refused: too large') })
    assert.equal(errors.length, 1)
    assert.equal(errors[0].refused, true)
    assert.equal(errors[0].message, 'ylambda: message refused: too large')
    assert.equal(messages.length, 1, 'y-websocket still gets the message (it logs it)')
    const closes = []
    first.onclose = (e) => closes.push(e)
    first.rawSocket.emit('close', { code: 1008, reason: '', wasClean: true })
    assert.equal(closes[0].reason, 'ylambda: message refused: too large')

    // y-websocket reconnects at once: the adapter holds the new socket back for 2 s
    const before = FakeWebSocket.instances.length
    const second = new WS(url)
    assert.equal(second.rawSocket, null)
    assert.equal(second.readyState, WS.CONNECTING)
    assert.equal(FakeWebSocket.instances.length, before)
    t.mock.timers.tick(1999)
    assert.equal(second.rawSocket, null)
    t.mock.timers.tick(1)
    assert.ok(second.rawSocket instanceof FakeWebSocket)
    // refused again: 4 s
    second.rawSocket.emit('open')
    second.rawSocket.emit('message', { data: denied('again') })
    second.rawSocket.emit('close', { code: 1008, reason: '', wasClean: true })
    const third = new WS(url)
    t.mock.timers.tick(3999)
    assert.equal(third.rawSocket, null)
    t.mock.timers.tick(1)
    assert.ok(third.rawSocket)
    // a connection that ends without a refusal resets the backoff; other URLs never waited
    third.rawSocket.emit('open')
    third.rawSocket.emit('close', { code: 1006, reason: '', wasClean: false })
    assert.ok(new WS(url).rawSocket)
    assert.ok(new WS('wss://h.example/prod/other-room').rawSocket)
  })

  test('closing a socket that is still waiting ends the wait and reports a close', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] })
    const WS = ylambdaWebSocket({ WebSocket: FakeWebSocket })
    const url = 'wss://h.example/prod/refused-then-closed'
    const first = new WS(url)
    first.rawSocket.emit('open')
    first.rawSocket.emit('message', { data: denied('no') })
    first.rawSocket.emit('close', { code: 1008, reason: '', wasClean: true })
    const waiting = new WS(url)
    const closes = []
    waiting.onclose = (e) => closes.push(e)
    waiting.close()
    await Promise.resolve()
    assert.equal(closes.length, 1)
    assert.equal(waiting.readyState, WS.CLOSED)
    assert.throws(() => waiting.send(new Uint8Array(1)))
    t.mock.timers.tick(60000)
    assert.equal(waiting.rawSocket, null, 'never connected')
  })
})

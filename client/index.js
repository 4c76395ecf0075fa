/**
 * ylambda-client: a WebSocket-compatible class for y-websocket's `WebSocketPolyfill` option that
 * lets a `WebsocketProvider` talk to a ylambda backend behind an AWS API Gateway WebSocket API.
 *
 * Two things differ from a plain y-websocket server:
 *
 * 1. API Gateway WebSocket APIs reject binary frames, so every y-websocket protocol message
 *    travels as a TEXT frame holding the standard base64 encoding of its bytes, both ways.
 * 2. An API Gateway URL has no room path (`wss://{api}.execute-api.{region}.amazonaws.com/{stage}`),
 *    so the room name that y-websocket appends as the last path segment is moved into the `room`
 *    query parameter.
 *
 * @module ylambda-client
 */

const CONNECTING = 0
const OPEN = 1
const CLOSING = 2
const CLOSED = 3

/** API Gateway's WebSocket frame size limit. */
const DEFAULT_MAX_FRAME_BYTES = 32 * 1024
/** API Gateway's WebSocket message size limit. */
const DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024

/**
 * Cuts the text of one message into pieces that each fit a frame of `pieceBytes`: text frames
 * `~1:{id}:{index}:{count}:{data}`, where the `data` in index order make the whole text. The
 * format (version 1) is the server's (`shared/src/protocol/pieces.rs`); `~` starts neither a
 * base64 frame nor y-webrtc's JSON. Every header is sized for the last (longest) index.
 *
 * @param {string} text ASCII text (base64), longer than `pieceBytes`
 * @param {string} id 1 to 32 ASCII letters and digits
 * @param {number} pieceBytes
 * @return {string[]}
 */
export const splitIntoPieces = (text, id, pieceBytes) => {
  const headerLength = (/** @type {number} */ count) => `~1:${id}:${count - 1}:${count}:`.length
  let guess = 2
  let count
  let perPiece
  for (;;) {
    perPiece = pieceBytes - headerLength(guess)
    if (perPiece <= 0) throw new RangeError('ylambda-client: pieceBytes is too small for a piece header')
    count = Math.ceil(text.length / perPiece)
    if (count <= guess) break
    guess = count
  }
  const pieces = []
  for (let index = 0; index < count; index++) {
    pieces.push(`~1:${id}:${index}:${count}:${text.slice(index * perPiece, (index + 1) * perPiece)}`)
  }
  return pieces
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** A random message id: 16 letters and digits. */
const messageId = () => {
  const bytes = new Uint8Array(16)
  if (globalThis.crypto && typeof globalThis.crypto.getRandomValues === 'function') {
    globalThis.crypto.getRandomValues(bytes)
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256)
  }
  return Array.from(bytes, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('')
}

/**
 * Whether `socket` lets the sender choose message fragmentation: the `ws` package's
 * `send(data, { fin })`. Browser and undici WebSockets take no options (they frame on their own).
 *
 * @param {any} socket
 */
const canFragment = (socket) => typeof socket.send === 'function' && socket.send.length >= 2 &&
  typeof socket.terminate === 'function'

const hasBuffer = typeof globalThis.Buffer === 'function' &&
  typeof globalThis.Buffer.from === 'function'

/**
 * Standard base64 (RFC 4648 §4, with padding) of some bytes.
 *
 * @param {Uint8Array} bytes
 * @return {string}
 */
export const encodeBase64 = (bytes) => {
  if (hasBuffer) {
    return globalThis.Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  }
  let binary = ''
  const chunk = 0x8000
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode.apply(null, /** @type {any} */ (bytes.subarray(i, i + chunk)))
  }
  return globalThis.btoa(binary)
}

const base64Pattern = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decodes base64 text into fresh bytes. Standard alphabet; padding optional; the URL-safe
 * alphabet (`-`, `_`) and ASCII whitespace are tolerated. Throws a `SyntaxError` on anything else.
 *
 * @param {string} text
 * @return {Uint8Array}
 */
export const decodeBase64 = (text) => {
  let s = text.replace(/[\t\n\f\r ]+/g, '')
  if (/[-_]/.test(s)) s = s.replace(/-/g, '+').replace(/_/g, '/')
  if (!base64Pattern.test(s)) throw new SyntaxError('ylambda-client: message is not base64 text')
  const unpadded = s.replace(/=+$/, '')
  if (unpadded.length % 4 === 1 || (s.length !== unpadded.length && s.length % 4 !== 0)) {
    throw new SyntaxError('ylambda-client: message is not base64 text (bad length)')
  }
  if (hasBuffer) {
    const buf = globalThis.Buffer.from(unpadded, 'base64')
    // copy: small Buffers are views into a shared pool
    const out = new Uint8Array(buf.length)
    out.set(buf)
    return out
  }
  const binary = globalThis.atob(unpadded + '='.repeat((4 - unpadded.length % 4) % 4))
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

/**
 * Decodes one URL path segment; a segment that is not valid percent-encoding is kept as it is
 * (y-websocket appends the room name without encoding it, so a name like `50%` arrives raw).
 *
 * @param {string} segment
 * @return {string}
 */
const decodeSegment = (segment) => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/**
 * Rewrites a y-websocket URL (`{server}/{room}?{params}`) into a ylambda URL
 * (`{server}?room={room}&{params}`): the last path segment, URL-decoded, becomes the `room`
 * query parameter; the rest of the path (the API Gateway stage) and all other query parameters
 * are kept. A URL whose path ends in `/` (no room segment) is returned unchanged (apart from
 * normalisation), so a URL that already carries `?room=` works too.
 *
 * @param {string | URL} url
 * @return {string}
 */
export const toYlambdaUrl = (url) => {
  const u = new URL(String(url))
  u.hash = ''
  const segments = u.pathname.split('/')
  const last = segments[segments.length - 1]
  if (last === '') return u.toString()
  const room = decodeSegment(last)
  const rest = segments.slice(0, -1).join('/')
  u.pathname = rest === '' ? '/' : rest
  const kept = u.search.replace(/^\?/, '').split('&').filter((pair) => {
    if (pair === '') return false
    const key = decodeSegment(pair.split('=')[0].replace(/\+/g, ' '))
    return key !== 'room'
  })
  // %20 rather than `+` for spaces: unambiguous for every query-string decoder
  u.search = '?' + ['room=' + encodeURIComponent(room)].concat(kept).join('&')
  return u.toString()
}

/**
 * @param {any} data
 * @return {Uint8Array | null}
 */
const asBytes = (data) => {
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (typeof SharedArrayBuffer !== 'undefined' && data instanceof SharedArrayBuffer) {
    return new Uint8Array(data)
  }
  return null
}

/**
 * @param {any} fn a function or an object with `handleEvent`
 * @param {any} thisArg
 * @param {any} event
 */
const callSafely = (fn, thisArg, event) => {
  try {
    if (typeof fn === 'function') fn.call(thisArg, event)
    else if (fn && typeof fn.handleEvent === 'function') fn.handleEvent(event)
  } catch (err) {
    // like a browser's event dispatch: one failing listener doesn't stop the others; the error
    // is still reported (and in Node, surfaces as an uncaught exception as it would with `ws`)
    if (typeof globalThis.reportError === 'function') globalThis.reportError(err)
    else queueMicrotask(() => { throw err })
  }
}

/**
 * The reason of a y-protocols permission-denied message (`[2, 0, varString reason]`), or null.
 * The server sends one, then closes the connection, when it refuses a message for good (one
 * larger than it accepts, or malformed pieces).
 *
 * @param {Uint8Array} bytes
 * @return {string | null}
 */
const permissionDenied = (bytes) => {
  if (bytes.length < 3 || bytes[0] !== 2 || bytes[1] !== 0) return null
  let len = 0
  let shift = 0
  let i = 2
  for (; i < bytes.length && i < 7; i++) {
    len += (bytes[i] & 0x7f) * 2 ** shift
    shift += 7
    if (bytes[i] < 0x80) break
  }
  const start = i + 1
  if (start + len > bytes.length) return null
  return new TextDecoder().decode(bytes.subarray(start, start + len))
}

/** First wait after a refusal, and the longest: each refusal in a row doubles the wait. */
const REFUSAL_BACKOFF_MIN_MS = 2000
const REFUSAL_BACKOFF_MAX_MS = 60000
/** URL -> refusals in a row and until when the next connection waits. */
const refusals = new Map()

/** @param {string} url */
const backoffLeft = (url) => {
  const entry = refusals.get(url)
  return entry ? Math.max(0, entry.until - Date.now()) : 0
}

/**
 * @param {string} url
 * @param {string | null} refusal
 * @param {boolean} opened
 */
const noteClose = (url, refusal, opened) => {
  if (refusal !== null) {
    const failures = (refusals.get(url) || { failures: 0 }).failures + 1
    const wait = Math.min(REFUSAL_BACKOFF_MAX_MS, REFUSAL_BACKOFF_MIN_MS * 2 ** (failures - 1))
    refusals.set(url, { failures, until: Date.now() + wait })
  } else if (opened) {
    refusals.delete(url)
  }
}

/**
 * Creates a WebSocket-compatible class to pass as y-websocket's `WebSocketPolyfill`.
 *
 * @param {object} [options]
 * @param {any} [options.WebSocket] The WebSocket implementation underneath. Default:
 *   `globalThis.WebSocket` (browsers, Deno, Bun, Node >= 22). In Node 20 pass `WebSocket` from `ws`.
 * @param {number} [options.maxFrameBytes] Where the underlying socket lets us choose the framing
 *   (the `ws` package), a message longer than this goes out as several WebSocket frames of at
 *   most this size. Default 32768: API Gateway closes a connection on any frame over 32 KB (a
 *   message may be up to 128 KB, in several frames). 0 disables fragmentation.
 * @param {number} [options.maxMessageBytes] The longest message sent as one message (default
 *   131072, API Gateway's limit). With `ws`, messages up to this go out fragmented.
 * @param {number} [options.pieceBytes] A message that cannot go out as one message (longer than
 *   `maxMessageBytes`, or longer than `pieceBytes` on a socket that sends each message as one
 *   frame: browsers, Node's built-in WebSocket) is sent as numbered pieces of at most this many
 *   bytes each, which the server reassembles. Default 32768 (API Gateway's frame limit). 0 turns
 *   pieces off.
 * @return {typeof WebSocket} a class constructed as `new (url, protocols?)`
 */
export const ylambdaWebSocket = (options = {}) => {
  const Impl = options.WebSocket
  const maxFrameBytes = options.maxFrameBytes === undefined ? DEFAULT_MAX_FRAME_BYTES : options.maxFrameBytes
  const maxMessageBytes = options.maxMessageBytes === undefined ? DEFAULT_MAX_MESSAGE_BYTES : options.maxMessageBytes
  const pieceBytes = options.pieceBytes === undefined ? DEFAULT_MAX_FRAME_BYTES : options.pieceBytes

  class YlambdaWebSocket {
    /**
     * @param {string | URL} url y-websocket's URL: `{server}/{room}?{params}`
     * @param {string | string[]} [protocols]
     * @param {any} [implOptions] passed as the third argument to the underlying constructor
     *   (e.g. `ws`'s options such as `headers`); browsers ignore it.
     */
    constructor (url, protocols, implOptions) {
      const WS = Impl || globalThis.WebSocket
      if (typeof WS !== 'function') {
        throw new TypeError('ylambda-client: no WebSocket implementation found; ' +
          "pass one: ylambdaWebSocket({ WebSocket }) with WebSocket from 'ws' in Node < 22")
      }
      /** @type {Record<string, Array<any>>} */
      this._listeners = { open: [], message: [], close: [], error: [] }
      /** @type {Record<string, any>} */
      this._handlers = { open: null, message: null, close: null, error: null }
      this._binaryType = 'arraybuffer'
      this._url = toYlambdaUrl(url)
      const args = [this._url]
      if (protocols !== undefined) args.push(protocols)
      if (implOptions !== undefined) {
        if (protocols === undefined) args.push(undefined)
        args.push(implOptions)
      }
      this._args = args
      /** Why the server refused this connection's message (its permission-denied reason). */
      this._refusal = null
      this._opened = false
      /** The underlying socket (a browser WebSocket or a `ws` instance); null while backing off. */
      this.rawSocket = null
      this._timer = null
      this._closedBeforeConnecting = false
      const wait = backoffLeft(this._url)
      if (wait > 0) {
        this._timer = setTimeout(() => { this._timer = null; this._connect(WS) }, wait)
      } else {
        this._connect(WS)
      }
    }

    /** @param {any} WS */
    _connect (WS) {
      this.rawSocket = new WS(...this._args)
      this.rawSocket.binaryType = 'arraybuffer'
      const raw = this.rawSocket
      raw.addEventListener('open', () => {
        this._opened = true
        this._dispatch({ type: 'open' })
      })
      raw.addEventListener('close', (/** @type {any} */ e) => {
        noteClose(this._url, this._refusal, this._opened)
        this._dispatch({
          type: 'close',
          code: e.code,
          reason: e.reason || (this._refusal ? this._refusal : ''),
          wasClean: e.wasClean
        })
      })
      raw.addEventListener('error', (/** @type {any} */ e) => {
        this._dispatch({ type: 'error', error: e.error, message: e.message })
      })
      raw.addEventListener('message', (/** @type {any} */ e) => this._onRawMessage(e.data))
    }

    /** @param {any} data */
    _onRawMessage (data) {
      let bytes
      if (typeof data === 'string') {
        try {
          if (data.length === 0) throw new SyntaxError('ylambda-client: empty message')
          bytes = decodeBase64(data)
        } catch (error) {
          // not a ylambda message: report it and drop it, rather than hand y-websocket bytes
          // that make its decoder throw
          this._dispatch({ type: 'error', error, message: String(error && error.message), data })
          return
        }
      } else {
        bytes = asBytes(data)
        if (bytes === null) {
          // e.g. a Blob from a browser that ignored binaryType: pass it on untouched
          this._dispatch({ type: 'message', data })
          return
        }
      }
      const refusal = permissionDenied(bytes)
      if (refusal !== null) {
        // The server will close this connection: say why, and back off before the next one
        // (y-websocket would otherwise reconnect at once and send the same message again).
        this._refusal = refusal
        this._dispatch({ type: 'error', message: refusal, refused: true })
      }
      this._dispatch({ type: 'message', data: this._wrap(bytes) })
    }

    /**
     * @param {Uint8Array} bytes
     */
    _wrap (bytes) {
      switch (this._binaryType) {
        case 'blob':
          if (typeof Blob === 'function') return new Blob([bytes])
          break
        case 'nodebuffer':
          if (hasBuffer) return globalThis.Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
          break
      }
      if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
    }

    /** @param {any} fields */
    _dispatch (fields) {
      const event = Object.assign({ target: this, currentTarget: this }, fields)
      const handler = this._handlers[event.type]
      if (handler) callSafely(handler, this, event)
      for (const entry of this._listeners[event.type].slice()) {
        if (entry.once) this.removeEventListener(event.type, entry.listener)
        callSafely(entry.listener, this, event)
      }
    }

    /**
     * Sends binary data as a base64 text frame. Strings are sent unchanged.
     *
     * @param {ArrayBuffer | ArrayBufferView | string} data
     */
    send (data) {
      if (typeof data === 'string') {
        // only ASCII is cut into frames: a cut must not split a character
        this._sendText(data, /^[\x00-\x7f]*$/.test(data))
        return
      }
      const bytes = asBytes(data)
      if (bytes === null) {
        throw new TypeError('ylambda-client: send() takes an ArrayBuffer, a typed array or a string')
      }
      this._sendText(encodeBase64(bytes), true)
    }

    /**
     * Sends one text message: as it is when it fits a frame; in several frames when it is longer
     * than `maxFrameBytes`, fits `maxMessageBytes` and the underlying socket can fragment; else,
     * if it is ASCII (base64), as pieces of at most `pieceBytes` (characters are bytes).
     *
     * @param {string} text
     * @param {boolean} ascii
     */
    _sendText (text, ascii) {
      const raw = this.rawSocket
      if (raw === null) throw new Error('ylambda-client: send() before the connection opened (InvalidStateError)')
      const fragmentable = ascii && maxFrameBytes > 0 && canFragment(raw) && raw.readyState === OPEN
      if (fragmentable && text.length > maxFrameBytes && text.length <= maxMessageBytes) {
        for (let i = 0; i < text.length; i += maxFrameBytes) {
          const fin = i + maxFrameBytes >= text.length
          raw.send(text.slice(i, i + maxFrameBytes), { binary: false, fin })
        }
        return
      }
      const oneFrame = fragmentable ? maxMessageBytes : pieceBytes
      if (ascii && pieceBytes > 0 && text.length > oneFrame && raw.readyState === OPEN) {
        for (const piece of splitIntoPieces(text, messageId(), pieceBytes)) raw.send(piece)
        return
      }
      raw.send(text)
    }

    /**
     * @param {number} [code]
     * @param {string} [reason]
     */
    close (code, reason) {
      if (this.rawSocket === null) {
        // still backing off: nothing to close but the wait
        if (this._timer !== null) clearTimeout(this._timer)
        this._timer = null
        if (!this._closedBeforeConnecting) {
          this._closedBeforeConnecting = true
          queueMicrotask(() => this._dispatch({ type: 'close', code: code || 1000, reason: reason || '', wasClean: true }))
        }
        return
      }
      if (code === undefined) this.rawSocket.close()
      else if (reason === undefined) this.rawSocket.close(code)
      else this.rawSocket.close(code, reason)
    }

    /**
     * @param {string} type
     * @param {any} listener
     * @param {boolean | { once?: boolean }} [opts]
     */
    addEventListener (type, listener, opts) {
      const list = this._listeners[type]
      if (!list || listener == null) return
      if (list.some((e) => e.listener === listener)) return
      list.push({ listener, once: typeof opts === 'object' && opts !== null && !!opts.once })
    }

    /**
     * @param {string} type
     * @param {any} listener
     */
    removeEventListener (type, listener) {
      const list = this._listeners[type]
      if (!list) return
      const i = list.findIndex((e) => e.listener === listener)
      if (i >= 0) list.splice(i, 1)
    }

    /** @param {{ type: string }} event */
    dispatchEvent (event) {
      if (this._listeners[event.type]) this._dispatch(event)
      return true
    }

    get onopen () { return this._handlers.open }
    set onopen (fn) { this._handlers.open = typeof fn === 'function' ? fn : null }
    get onmessage () { return this._handlers.message }
    set onmessage (fn) { this._handlers.message = typeof fn === 'function' ? fn : null }
    get onclose () { return this._handlers.close }
    set onclose (fn) { this._handlers.close = typeof fn === 'function' ? fn : null }
    get onerror () { return this._handlers.error }
    set onerror (fn) { this._handlers.error = typeof fn === 'function' ? fn : null }

    /** What `message` events carry: 'arraybuffer' (default), 'blob' or, in Node, 'nodebuffer'. */
    get binaryType () { return this._binaryType }
    set binaryType (t) {
      if (t === 'arraybuffer' || t === 'blob' || t === 'nodebuffer') this._binaryType = t
    }

    get readyState () {
      if (this.rawSocket === null) return this._closedBeforeConnecting ? CLOSED : CONNECTING
      return this.rawSocket.readyState
    }

    get bufferedAmount () { return (this.rawSocket && this.rawSocket.bufferedAmount) || 0 }
    get protocol () { return (this.rawSocket && this.rawSocket.protocol) || '' }
    get extensions () { return (this.rawSocket && this.rawSocket.extensions) || '' }
    /** The rewritten URL actually connected to (`…/{stage}?room=…`). */
    get url () { return this._url }
  }

  for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
    Object.defineProperty(YlambdaWebSocket, name, { value, enumerable: true })
    Object.defineProperty(YlambdaWebSocket.prototype, name, { value, enumerable: true })
  }

  return /** @type {any} */ (YlambdaWebSocket)
}

export default ylambdaWebSocket

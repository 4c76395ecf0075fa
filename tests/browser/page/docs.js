// The y-websocket test page: one Y.Doc and one stock WebsocketProvider talking to `ylambda dev`
// through the ylambda-client adapter over the browser's own WebSocket (which sends every message
// as one frame). Bundled with esbuild at test start (lib/page-server.js); the tests drive it
// through `window.ylambdaDocs`.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { ylambdaWebSocket } from 'ylambda-client'

let doc = new Y.Doc()
let provider = null
let sockets = 0
const closes = []
const errors = []

const Counting = class extends ylambdaWebSocket() {
  constructor (...args) {
    super(...args)
    sockets++
    this.addEventListener('error', (e) => errors.push(String(e.message || e.type)))
  }
}

/** `chars` characters of mixed ASCII and non-ASCII text (2- and 3-byte UTF-8, and emoji). */
const mixedText = (chars) => {
  const words = ['plain ', 'ascii ', 'Grüße ', 'naïve ', '世界 ', 'データ ', '✓ ', '🚀 ', '\n']
  let out = ''
  for (let i = 0; out.length < chars; i++) out += words[(i * 7 + (i >> 3)) % words.length]
  return out.slice(0, chars)
}

window.ylambdaDocs = {
  /** Builds a document of `chars` characters before connecting, as an offline editor would. */
  buildOffline (chars) {
    const content = mixedText(chars)
    const text = doc.getText('text')
    for (let at = 0; at < content.length; at += 4096) text.insert(at, content.slice(at, at + 4096))
    return Y.encodeStateAsUpdate(doc).length
  },
  /** @param {{ server: string, room: string }} opts */
  connect ({ server, room }) {
    provider = new WebsocketProvider(server, room, doc, {
      WebSocketPolyfill: /** @type {any} */ (Counting),
      disableBc: true,
      maxBackoffTime: 1000
    })
    provider.on('connection-close', (e) => closes.push(e ? { code: e.code, reason: e.reason } : 'local'))
  },
  synced: () => !!(provider && provider.wsconnected && provider.synced),
  /** Pastes `chars` characters of mixed text at the start; returns the update's size. */
  paste (chars) {
    const before = Y.encodeStateVector(doc)
    doc.getText('text').insert(0, mixedText(chars))
    return Y.encodeStateAsUpdate(doc, before).length
  },
  length: () => doc.getText('text').length,
  /** A digest of the text, so the test compares megabytes without moving them. */
  digest: async () => {
    const bytes = new TextEncoder().encode(doc.getText('text').toString())
    const hash = await crypto.subtle.digest('SHA-256', bytes)
    return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('')
  },
  expected: async (chars) => {
    const bytes = new TextEncoder().encode(mixedText(chars))
    const hash = await crypto.subtle.digest('SHA-256', bytes)
    return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, '0')).join('')
  },
  connections: () => ({ sockets, closes: closes.slice(), errors: errors.slice() })
}

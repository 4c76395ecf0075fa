/** Options of {@link ylambdaWebSocket}. */
export interface YlambdaWebSocketOptions {
  /**
   * The WebSocket implementation underneath. Default: `globalThis.WebSocket`
   * (browsers, Deno, Bun, Node >= 22). In Node 20 pass `WebSocket` from `ws`.
   */
  WebSocket?: any
  /**
   * Where the underlying socket lets the sender choose the framing (the `ws` package), a message
   * longer than this goes out in several frames of at most this size. Default 32768 (API
   * Gateway's frame limit; a message may be up to 128 KB). 0 disables fragmentation.
   */
  maxFrameBytes?: number
  /** The longest message sent as one message. Default 131072 (API Gateway's limit). */
  maxMessageBytes?: number
  /**
   * A message that cannot go out as one message (over `maxMessageBytes`, or over this on a
   * socket that sends each message as one frame: browsers, Node's built-in WebSocket) is sent as
   * numbered pieces of at most this many bytes, which the server reassembles. Default 32768.
   * 0 turns pieces off.
   */
  pieceBytes?: number
}

/** A WebSocket-compatible class for y-websocket's `WebSocketPolyfill` option. */
export interface YlambdaWebSocketClass {
  new (url: string | URL, protocols?: string | string[], implOptions?: any): YlambdaWebSocketInstance
  readonly CONNECTING: 0
  readonly OPEN: 1
  readonly CLOSING: 2
  readonly CLOSED: 3
}

export interface YlambdaWebSocketInstance {
  readonly CONNECTING: 0
  readonly OPEN: 1
  readonly CLOSING: 2
  readonly CLOSED: 3
  /** The rewritten URL actually connected to (`{server}?room={room}&{params}`). */
  readonly url: string
  readonly readyState: number
  readonly bufferedAmount: number
  readonly protocol: string
  readonly extensions: string
  /** 'arraybuffer' (default), 'blob', or in Node 'nodebuffer'. */
  binaryType: 'arraybuffer' | 'blob' | 'nodebuffer'
  /** The underlying socket (browser WebSocket or `ws` instance). */
  readonly rawSocket: any
  onopen: ((event: { type: 'open' }) => void) | null
  onmessage: ((event: { type: 'message', data: ArrayBuffer | Blob | Uint8Array }) => void) | null
  onclose: ((event: { type: 'close', code: number, reason: string, wasClean: boolean }) => void) | null
  onerror: ((event: { type: 'error', error?: unknown, message?: string, data?: string }) => void) | null
  /** Binary data goes out as a base64 text frame; strings are sent unchanged. */
  send (data: ArrayBuffer | ArrayBufferView | string): void
  close (code?: number, reason?: string): void
  addEventListener (type: 'open' | 'message' | 'close' | 'error', listener: any, options?: boolean | { once?: boolean }): void
  removeEventListener (type: 'open' | 'message' | 'close' | 'error', listener: any): void
  dispatchEvent (event: { type: string }): boolean
}

/** Creates the class to pass as `WebSocketPolyfill` to y-websocket's `WebsocketProvider`. */
export function ylambdaWebSocket (options?: YlambdaWebSocketOptions): YlambdaWebSocketClass
export default ylambdaWebSocket

/** `{server}/{room}?{params}` -> `{server}?room={room}&{params}` (room URL-decoded, stage path kept). */
export function toYlambdaUrl (url: string | URL): string
/** Standard, padded base64. */
export function encodeBase64 (bytes: Uint8Array): string
/** The piece frames (`~1:{id}:{index}:{count}:{data}`) of one long ASCII message text. */
export function splitIntoPieces (text: string, id: string, pieceBytes: number): string[]
/** Decodes base64 (padding optional); throws SyntaxError on non-base64 text. */
export function decodeBase64 (text: string): Uint8Array

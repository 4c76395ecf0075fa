// A shared 64x64 pixel board: one Y.Map of "x,y" -> color in the room's Yjs document.
// 1. The board appears at once from GET /api/rooms/{room}/state, a plain HTTP read the edge may
//    cache for 3 s (a crowd opening the page costs the backend one read per 3 s per edge).
// 2. Then a y-websocket provider (through the ylambda-client adapter, as API Gateway needs)
//    syncs what changed since and follows every later edit live.
// 3. A click sets a pixel: an edit of the Y.Map, sent over the WebSocket.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { ylambdaWebSocket } from 'ylambda-client'

const SIZE = 64
const SCALE = 8
const COLORS = ['#111827', '#ef4444', '#f59e0b', '#10b981', '#3b82f6', '#8b5cf6', '#ec4899', '#ffffff']

const params = new URLSearchParams(location.search)
const room = params.get('room') || 'pixel-board'
const token = params.get('token')
// The HTTP API and the WebSocket: this page's own server by default (ylambda dev), or ?api= and
// ?ws= for a deployment (an HTTP API / Function URL, and the API Gateway WebSocket URL).
const api = (params.get('api') || location.origin).replace(/\/$/, '')
const ws = params.get('ws') || location.origin.replace(/^http/, 'ws')

const doc = new Y.Doc()
const pixels = doc.getMap('pixels')
const canvas = document.getElementById('board')
const ctx = canvas.getContext('2d')
let color = COLORS[1]

const draw = (key, value) => {
  const [x, y] = key.split(',').map(Number)
  ctx.fillStyle = value || '#ffffff'
  ctx.fillRect(x * SCALE, y * SCALE, SCALE, SCALE)
}
const drawAll = () => {
  ctx.fillStyle = '#ffffff'
  ctx.fillRect(0, 0, SIZE * SCALE, SIZE * SCALE)
  pixels.forEach((value, key) => draw(key, value))
}
const status = (text) => { document.getElementById('status').textContent = text }
let live = false
pixels.observe((event) => {
  event.keysChanged.forEach((key) => draw(key, pixels.get(key)))
  if (live) status(`room ${room}: live (${pixels.size} pixels)`)
})

/** What the page did, for people (the status line) and for tests (window.board). */
const board = {
  room,
  state: { status: 0, bytes: 0 },
  pixel: (x, y) => pixels.get(`${x},${y}`) || null,
  synced: () => !!provider && provider.synced,
  color: (c) => { color = c }
}
window.board = board

const palette = document.getElementById('palette')
for (const c of COLORS) {
  const b = document.createElement('button')
  b.style.background = c
  b.title = c
  b.onclick = () => { color = c }
  palette.append(b)
}

canvas.addEventListener('click', (e) => {
  const rect = canvas.getBoundingClientRect()
  const x = Math.floor(((e.clientX - rect.left) / rect.width) * SIZE)
  const y = Math.floor(((e.clientY - rect.top) / rect.height) * SIZE)
  if (x >= 0 && x < SIZE && y >= 0 && y < SIZE) pixels.set(`${x},${y}`, color)
})

let provider = null

const start = async () => {
  // 1. The cached state over HTTP (404: a board nobody has drawn on yet).
  const headers = token ? { Authorization: `Bearer ${token}` } : {}
  try {
    const res = await fetch(`${api}/api/rooms/${encodeURIComponent(room)}/state`, { headers })
    board.state.status = res.status
    if (res.status === 200) {
      const update = new Uint8Array(await res.arrayBuffer())
      board.state.bytes = update.length
      Y.applyUpdate(doc, update, 'http')
    }
  } catch (err) {
    board.state.status = String(err)
  }
  drawAll()
  status(`room ${room}: ${pixels.size} pixels loaded over HTTP, connecting…`)

  // 2. Live edits over the WebSocket: its sync sends only what changed since that read.
  provider = new WebsocketProvider(ws, room, doc, {
    WebSocketPolyfill: /** @type {any} */ (ylambdaWebSocket()),
    params: token ? { token } : {}
  })
  provider.on('sync', (synced) => {
    live = synced
    status(`room ${room}: ${synced ? 'live' : 'syncing…'} (${pixels.size} pixels)`)
  })
}
start()

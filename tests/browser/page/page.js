// The page under test: one Y.Doc and one y-webrtc WebrtcProvider whose only signaling server is
// `ylambda dev`. Bundled with esbuild at test start (lib/page-server.js); the tests drive it
// through `window.ylambdaTest`.
import * as Y from 'yjs'
import { WebrtcProvider } from 'y-webrtc'

// Every ICE candidate this page gathers, for diagnostics (simple-peer looks RTCPeerConnection up
// on globalThis when it creates a peer, so this subclass is what it uses).
const candidates = []
const NativePeerConnection = globalThis.RTCPeerConnection
if (NativePeerConnection) {
  globalThis.RTCPeerConnection = class extends NativePeerConnection {
    constructor (...args) {
      super(...args)
      this.addEventListener('icecandidate', (e) => { if (e.candidate) candidates.push(e.candidate.candidate) })
    }
  }
}

let doc = null
let provider = null
const peerEvents = []
// Signaling `publish` messages this page received on its room's topic (its own announce
// included: the server relays a publish to the sender too).
let roomPublishesSeen = 0

const room = () => {
  if (!provider || !provider.room) throw new Error('provider not started, or its room not open yet')
  return provider.room
}

window.ylambdaTest = {
  /**
   * @param {{ room: string, signaling: string, password?: string }} opts
   */
  start ({ room: roomName, signaling, password }) {
    if (provider) throw new Error('already started')
    doc = new Y.Doc()
    provider = new WebrtcProvider(roomName, doc, {
      signaling: [signaling],
      password: password || null,
      filterBcConns: true,
      // No STUN/TURN servers: simple-peer's default list points at Google and Twilio, and this
      // test must not leave the machine. Host candidates are enough between two local browsers.
      peerOpts: { config: { iceServers: [] } }
    })
    for (const conn of provider.signalingConns) {
      conn.on('message', (m) => { if (m.type === 'publish' && m.topic === roomName) roomPublishesSeen++ })
    }
    provider.on('peers', (e) => peerEvents.push({
      at: Date.now(), added: e.added, removed: e.removed, webrtcPeers: e.webrtcPeers, bcPeers: e.bcPeers
    }))
    return doc.clientID
  },
  /** The provider's room exists (the password's key is derived asynchronously). */
  ready: () => !!(provider && provider.room),
  clientID: () => doc.clientID,
  insert (index, text) { doc.getText('text').insert(index, text) },
  append (text) { const t = doc.getText('text'); t.insert(t.length, text) },
  text: () => doc.getText('text').toString(),
  setUser (name) { provider.awareness.setLocalStateField('user', { name }) },
  /** Awareness states as [clientID, state] pairs (this page's own included). */
  awareness: () => Array.from(provider.awareness.getStates().entries()),
  /** y-webrtc's view of its peers and signaling connections. */
  peers () {
    const r = room()
    return {
      peerId: r.peerId,
      webrtcConns: r.webrtcConns.size,
      webrtcConnected: Array.from(r.webrtcConns.values()).filter((c) => c.connected).length,
      webrtcSynced: Array.from(r.webrtcConns.values()).filter((c) => c.synced).length,
      webrtcPeers: Array.from(r.webrtcConns.keys()),
      bcConns: r.bcConns.size,
      bcconnected: r.bcconnected,
      synced: r.synced,
      signaling: provider.signalingConns.map((c) => ({ url: c.url, connected: c.connected }))
    }
  },
  peerEvents: () => peerEvents.slice(),
  roomPublishesSeen: () => roomPublishesSeen,
  candidates: () => candidates.slice(),
  /**
   * getStats() of every WebRTC connection: what the data channels carried (proof that the sync
   * went over a peer connection) and the ICE candidate pairs that carried bytes (their addresses).
   * Several pairs may be used in turn: ICE may move to a better pair after the first one worked.
   */
  async webrtcStats () {
    const out = []
    for (const conn of room().webrtcConns.values()) {
      const pc = conn.peer && conn.peer._pc
      if (!pc) continue
      const stats = await pc.getStats()
      const byId = new Map()
      stats.forEach((s) => byId.set(s.id, s))
      const entry = { remotePeerId: conn.remotePeerId, dataChannels: [], usedPairs: [], selectedPairId: null }
      stats.forEach((s) => {
        if (s.type === 'data-channel') {
          entry.dataChannels.push({
            label: s.label,
            state: s.state,
            messagesSent: s.messagesSent,
            messagesReceived: s.messagesReceived,
            bytesSent: s.bytesSent,
            bytesReceived: s.bytesReceived
          })
        } else if (s.type === 'transport' && s.selectedCandidatePairId) {
          entry.selectedPairId = s.selectedCandidatePairId
        } else if (s.type === 'candidate-pair' && (s.bytesSent > 0 || s.bytesReceived > 0)) {
          const local = byId.get(s.localCandidateId) || {}
          const remote = byId.get(s.remoteCandidateId) || {}
          entry.usedPairs.push({
            id: s.id,
            state: s.state,
            localAddress: local.address || local.ip || '',
            localPort: local.port,
            localType: local.candidateType,
            remoteAddress: remote.address || remote.ip || '',
            remotePort: remote.port,
            remoteType: remote.candidateType,
            protocol: local.protocol,
            bytesSent: s.bytesSent,
            bytesReceived: s.bytesReceived
          })
        }
      })
      out.push(entry)
    }
    return out
  },
  destroy () {
    if (provider) provider.destroy()
    if (doc) doc.destroy()
  }
}

// Hocuspocus with its defaults (no extensions, no persistence): one of the peers scripts/bench.sh
// measures ylambda against. PORT (0 picks a free one); prints one line with its URL.
import { Server } from '@hocuspocus/server'

const server = new Server({
  port: Number(process.env.PORT ?? 0),
  address: '127.0.0.1',
  quiet: true,
  stopOnSignals: true
})
await server.listen()
console.log(`hocuspocus listening on ws://127.0.0.1:${server.address.port}`)

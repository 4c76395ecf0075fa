// The y-websocket reference server (@y/websocket-server's own bin, in memory: no YPERSISTENCE):
// one of the peers scripts/bench.sh measures ylambda against. PORT; prints one line with its URL.
process.env.HOST = '127.0.0.1'
await import('@y/websocket-server/src/server.js').catch(async () => {
  // The package's exports map hides src/: load it by path.
  const { createRequire } = await import('node:module')
  const path = createRequire(import.meta.url).resolve('@y/websocket-server/package.json')
  await import(new URL('src/server.js', `file://${path}`).href)
})

/**
 * Bundles page/page.js (yjs + y-webrtc) with esbuild, in memory, and serves it with a tiny HTML
 * page from a node:http server on 127.0.0.1 (a free port). http://127.0.0.1 is a secure context,
 * so the page has crypto.subtle (y-webrtc's room password) and WebRTC.
 */
import { createServer } from 'node:http'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** @return {Promise<string>} the bundle's source */
export const bundlePage = async () => {
  const result = await build({
    entryPoints: [resolve(root, 'page/page.js')],
    absWorkingDir: root,
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2020',
    write: false,
    logLevel: 'warning'
  })
  return result.outputFiles[0].text
}

const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>ylambda y-webrtc test page</title></head>
<body><script src="/page.js"></script></body></html>
`

/**
 * @return {Promise<{ url: string, close: () => Promise<void> }>}
 */
export const startPageServer = async () => {
  const bundle = await bundlePage()
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname
    if (req.method === 'GET' && path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(html)
    } else if (req.method === 'GET' && path === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' })
      res.end(bundle)
    } else if (path === '/favicon.ico') {
      res.writeHead(204)
      res.end()
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('not found')
    }
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}

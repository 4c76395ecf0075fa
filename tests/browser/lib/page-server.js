/**
 * Bundles the test pages with esbuild, in memory, and serves each with a tiny HTML page from a
 * node:http server on 127.0.0.1 (a free port): `/` is page/page.js (yjs + y-webrtc), `/docs` is
 * page/docs.js (yjs + y-websocket + the ylambda-client adapter). http://127.0.0.1 is a secure
 * context, so the pages have crypto.subtle (y-webrtc's room password) and WebRTC.
 */
import { createServer } from 'node:http'
import { resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * @param {string} entry the page's script, relative to tests/browser
 * @return {Promise<string>} the bundle's source
 */
export const bundlePage = async (entry = 'page/page.js') => {
  const result = await build({
    entryPoints: [resolve(root, entry)],
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

const html = (title, script) => `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title></head>
<body><script src="${script}"></script></body></html>
`

/**
 * @return {Promise<{ url: string, close: () => Promise<void> }>}
 */
export const startPageServer = async () => {
  const [webrtcBundle, docsBundle] = await Promise.all([bundlePage('page/page.js'), bundlePage('page/docs.js')])
  const routes = {
    '/': ['text/html', html('ylambda y-webrtc test page', '/page.js')],
    '/page.js': ['text/javascript', webrtcBundle],
    '/docs': ['text/html', html('ylambda y-websocket test page', '/docs.js')],
    '/docs.js': ['text/javascript', docsBundle]
  }
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname
    const route = req.method === 'GET' && Object.hasOwn(routes, path) ? routes[path] : null
    if (route) {
      res.writeHead(200, { 'content-type': `${route[0]}; charset=utf-8`, 'cache-control': 'no-store' })
      res.end(route[1])
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

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import fs from 'node:fs'
const data = fs.readFileSync(process.argv[2])
const d = decoding.createDecoder(data)
while (decoding.hasContent(d)) {
  const t = decoding.readVarUint(d)
  if (t !== 0) { console.log('msg type', t); break }
  const st = decoding.readVarUint(d)
  const u = decoding.readVarUint8Array(d)
  console.log('sync', st, 'len', u.length, Buffer.from(u).toString('hex').slice(0, 400))
  try {
    const x = Y.decodeUpdate(u)
    for (const s of x.structs) console.log(' ', s.constructor.name, s.id.client, s.id.clock, s.length, s.parent ? JSON.stringify(s.parent) : '', s.parentSub ?? '', s.origin ? `o=${s.origin.client}:${s.origin.clock}` : '', s.rightOrigin ? `ro=${s.rightOrigin.client}:${s.rightOrigin.clock}` : '', s.content ? s.content.constructor.name + ':' + (s.content.str ?? s.content.len ?? '') : '')
    console.log('  ds', JSON.stringify([...x.ds.clients.entries()]))
  } catch (e) { console.log('  yjs error', e.message) }
}

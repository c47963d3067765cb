// Content identifiers the way IPFS names files: ipfs-unixfs-importer with the IPIP-499
// `unixfs-v1-2025` profile (CIDv1, raw leaves, 1 MiB chunks, 1024 links per node), which
// is also ipfs-car's and kubo's `--profile=unixfs-v1-2025`, so every tool agrees on a CID.
//
//   node ipfs.mjs cid FILE...            -> one JSON line per file: {"file", "cid"}
//   node ipfs.mjs car OUT.car FILE...    -> a CARv1 holding every block of the files, rooted
//                                           at their CIDs; prints {"car", "roots", "blocks"}
import fs from 'node:fs';
import { importer } from 'ipfs-unixfs-importer';
import { CarWriter } from '@ipld/car/writer';

const OPTIONS = { profile: 'unixfs-v1-2025', wrapWithDirectory: false };

// A blockstore that keeps blocks only when asked: naming a file needs none of them.
class Blocks {
  constructor(keep) { this.keep = keep; this.blocks = new Map(); }
  async put(cid, bytes) {
    if (this.keep && !this.blocks.has(cid.toString())) this.blocks.set(cid.toString(), { cid, bytes });
    return cid;
  }
}

async function importFile(file, blocks) {
  const content = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  let root;
  for await (const entry of importer([{ content }], blocks, OPTIONS)) root = entry;
  return { cid: root.cid.toString(), root: root.cid };
}

async function cid(files) {
  const blocks = new Blocks(false);
  for (const file of files) {
    const { cid: named } = await importFile(file, blocks);
    process.stdout.write(JSON.stringify({ file, cid: named }) + '\n');
  }
}

async function car(out, files) {
  const blocks = new Blocks(true);
  const roots = [];
  for (const file of files) roots.push((await importFile(file, blocks)).root);
  const { writer, out: stream } = CarWriter.create(roots);
  const sink = fs.createWriteStream(out);
  const done = new Promise((resolve, reject) => { sink.on('finish', resolve); sink.on('error', reject); });
  const pump = (async () => { for await (const chunk of stream) sink.write(chunk); sink.end(); })();
  for (const block of blocks.blocks.values()) await writer.put(block);
  await writer.close();
  await pump;
  await done;
  process.stdout.write(JSON.stringify({ car: out, roots: roots.map(String), blocks: blocks.blocks.size }) + '\n');
}

const [command, ...args] = process.argv.slice(2);
const run = command === 'cid' ? cid(args) : command === 'car' ? car(args[0], args.slice(1)) : null;
if (run === null) {
  process.stderr.write('usage: node ipfs.mjs cid FILE... | car OUT.car FILE...\n');
  process.exit(2);
}
run.catch((err) => { process.stderr.write(`${err.message}\n`); process.exit(1); });

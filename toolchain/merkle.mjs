// The Merkle root of a training-data manifest, with OpenZeppelin's StandardMerkleTree (leaves
// abi-encoded and double-hashed, pairs sorted: what OZ's MerkleProof.verify checks on-chain).
//
//   node merkle.mjs MANIFEST.json   -> {"root": "0x...", "leaves": N}
// Each leaf is (path, sha256, contributor): `files[i].path`, `.sha256` (0x + 64 hex) and
// `.contributor` (an address; the zero address for a contributor without one).
import fs from 'node:fs';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

const LEAF = ['string', 'bytes32', 'address'];
try {
  const manifest = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const values = manifest.files.map((f) => [f.path, f.sha256, f.contributor]);
  const tree = StandardMerkleTree.of(values, LEAF);
  process.stdout.write(JSON.stringify({ root: tree.root, leaves: values.length }) + '\n');
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}

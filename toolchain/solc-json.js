// Standard-JSON solc front end: node solc-json.js <solc package dir>  (stdin -> stdout).
// Streams stdin (solcjs's CLI fails with EAGAIN on large piped input) and resolves
// imports such as @openzeppelin/... from this folder's node_modules.
const fs = require('fs');
const path = require('path');
const solc = require(path.resolve(process.argv[2]));
const roots = [path.join(__dirname, 'node_modules'), process.cwd()];
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const findImports = (p) => {
    for (const r of roots) {
      const f = path.join(r, p);
      if (fs.existsSync(f)) return { contents: fs.readFileSync(f, 'utf8') };
    }
    return { error: 'not found: ' + p };
  };
  process.stdout.write(solc.compile(Buffer.concat(chunks).toString('utf8'), { import: findImports }));
});

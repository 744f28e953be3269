// Bundle the console into soc/console/static: one hashed JS file, one hashed CSS file and the
// index.html that names them. Nothing is loaded from anywhere else at run time.
import { build } from 'esbuild';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'soc', 'console', 'static');

await mkdir(out, { recursive: true });
for (const name of await readdir(out)) await rm(join(out, name), { recursive: true, force: true });

const result = await build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  loader: { '.json': 'json' },
  metafile: true,
  legalComments: 'eof',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const pick = (ext) => {
  const found = outputs.find((name) => name.endsWith(ext));
  if (!found) throw new Error(`build produced no ${ext} file`);
  return `assets/${found}`;
};
const template = await readFile(join(here, 'index.html'), 'utf8');
await writeFile(join(out, 'index.html'), template.replace('{{js}}', pick('.js')).replace('{{css}}', pick('.css')));
const sizes = Object.entries(result.metafile.outputs).map(([p, o]) => `${basename(p)}=${o.bytes}`);
console.log(`console built into ${out}: ${sizes.join(' ')}`);

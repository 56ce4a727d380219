// Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
//
// Bundles src/viewer.js with three.js (GLTFLoader and OrbitControls from its examples) into
// dist/viewer.min.js, one minified IIFE that flamenerf/export/page.py inlines into index.html.
// The bundle is committed: pip installs never need node. Rebuild it after changing src/ or the
// pinned versions in package-lock.json:
//
//   cd flamenerf/export/viewer && npm ci && npm run build     # writes dist/
//   npm run check                                             # rebuilds in memory, compares
//
// dist/ also receives three.js's licence (THREE_LICENSE.txt: the bundle carries three.js code)
// and manifest.json: the bundle's SHA-256 and size, the versions it was built from and the
// SHA-256 of its sources (this script, package-lock.json, src/viewer.js). esbuild's
// output depends only on its version, the inputs and the options below (no paths, no dates), so
// a rebuild from package-lock.json is byte-identical: `--check` (and tests/export/test_page.py)
// verify it.

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = join(HERE, 'dist');
const BUNDLE = 'viewer.min.js';

function version(name) {
  return JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
}

async function build() {
  const result = await esbuild.build({
    absWorkingDir: HERE,
    entryPoints: ['src/viewer.js'],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    minify: true,
    legalComments: 'eof', // three.js's @license line stays in the bundle
    charset: 'ascii', // safe to inline in any page
    sourcemap: false,
    write: false,
    logLevel: 'warning',
  });
  const code = Buffer.from(result.outputFiles[0].contents);
  const text = code.toString('utf8');
  // The page inlines the bundle in a <script> element: these would end or confuse it.
  for (const forbidden of ['</script', '<!--']) {
    if (text.toLowerCase().includes(forbidden)) throw new Error(`the bundle contains "${forbidden}"`);
  }
  return code;
}

// The files the bundle is built from: a test without node checks that the committed bundle
// was rebuilt after any of them changed.
const SOURCES = ['build.mjs', 'package-lock.json', 'src/viewer.js'];

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

function manifest(code) {
  return {
    bundle: BUNDLE,
    sha256: sha256(code),
    bytes: code.length,
    three: version('three'),
    esbuild: version('esbuild'),
    licence: 'THREE_LICENSE.txt',
    sources: Object.fromEntries(SOURCES.map((name) => [name, sha256(readFileSync(join(HERE, name)))])),
  };
}

function writeAtomic(path, data) {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}

const code = await build();
if (process.argv.includes('--check')) {
  const committed = readFileSync(join(DIST, BUNDLE));
  const recorded = JSON.parse(readFileSync(join(DIST, 'manifest.json'), 'utf8'));
  const fresh = manifest(code);
  if (!committed.equals(code) || JSON.stringify(recorded) !== JSON.stringify(fresh)) {
    console.error(
      `dist/${BUNDLE} is not what package-lock.json and src/ build: committed sha256 ` +
        `${recorded.sha256} (${committed.length} bytes), rebuilt ${fresh.sha256} (${code.length} bytes ` +
        `with three ${fresh.three}, esbuild ${fresh.esbuild}); run \`npm ci && npm run build\``,
    );
    process.exit(1);
  }
  console.log(`dist/${BUNDLE} reproduced byte-identically (sha256 ${fresh.sha256})`);
} else {
  mkdirSync(DIST, { recursive: true });
  writeAtomic(join(DIST, BUNDLE), code);
  writeAtomic(join(DIST, 'THREE_LICENSE.txt'), readFileSync(join(HERE, 'node_modules', 'three', 'LICENSE')));
  writeAtomic(join(DIST, 'manifest.json'), `${JSON.stringify(manifest(code), null, 2)}\n`);
  console.log(`wrote dist/${BUNDLE} (${code.length} bytes)`);
}

#!/usr/bin/env node
// A native-`solc` look-alike over npm's solc-js (WebAssembly), so py-solc-x / ape-solidity can
// compile offline. Supports what they call: `--version` and `--standard-json` on stdin with
// `--base-path`, `--include-path` and `--allow-paths`. Symlink it (do not copy it) as
// `solc-v<version>` into the folder named by SOLCX_BINARY_PATH; it finds node_modules from its
// real location.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

function parseArgs(argv) {
  const opts = { standardJson: false, version: false, roots: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const takeValue = () => {
      const eq = a.indexOf('=');
      return eq >= 0 ? a.slice(eq + 1) : argv[++i];
    };
    if (a === '--version') opts.version = true;
    else if (a === '--standard-json') opts.standardJson = true;
    else if (a.startsWith('--base-path') || a.startsWith('--include-path')) opts.roots.push(takeValue());
    else if (a.startsWith('--allow-paths')) takeValue(); // imports are confined to the roots anyway
    // anything else (e.g. optimiser flags) is carried by the standard-json input itself
  }
  return opts;
}

function importResolver(roots) {
  // npm packages (e.g. @openzeppelin/contracts) resolve from the project's node_modules, found
  // next to this script's real location.
  const nodeModules = path.resolve(fs.realpathSync(__filename), '..', '..', 'node_modules');
  const searchRoots = [...(roots.length ? roots : [process.cwd()]), nodeModules];
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : searchRoots.map((root) => path.resolve(root, importPath));
    for (const file of candidates) {
      if (fs.existsSync(file)) return { contents: fs.readFileSync(file, 'utf8') };
    }
    return { error: `File not found: ${importPath} (searched ${searchRoots.join(', ')})` };
  };
}

function nativeVersion() {
  // solc-js reports e.g. "0.8.37+commit.f401782d.Emscripten.clang"; native builds say Linux.g++.
  return solc.version().replace('Emscripten.clang', 'Linux.g++');
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${nativeVersion()}\n`);
    return 0;
  }
  if (!opts.standardJson) {
    process.stderr.write('This solc wrapper supports only --version and --standard-json.\n');
    return 1;
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: importResolver(opts.roots) });
  process.stdout.write(output + '\n');
  return 0;
}

process.exitCode = main();

#!/usr/bin/env node
// `npm run build`, after tsc: writes dist/etcd-shield.js, etcd-shield and its
// dependencies in one file that needs nothing but node 20 (SHIELD's agent lists
// only regular executable files, so a copy of this one can be the plugin).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'dist', 'etcd-shield.js');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

// The same first line (node and malloc settings) as bin/etcd-shield; its comment says why.
const shebang = fs.readFileSync(path.join(ROOT, 'bin', 'etcd-shield'), 'utf8').split('\n', 1)[0];
if (!shebang.startsWith('#!')) throw new Error('bin/etcd-shield has no #! line to copy');

// etcd3 parses its rpc.proto from disk when loaded. The bundle carries the
// parsed descriptors instead, built with the protobufjs that proto-loader uses.
const loaderDir = path.dirname(require.resolve('@grpc/proto-loader/package.json'));
const etcd3Dir = path.dirname(require.resolve('etcd3/package.json'));
const protoLoader = require(loaderDir);
const protobuf = require(require.resolve('protobufjs', { paths: [loaderDir] }));
const RPC_PROTO = path.join(etcd3Dir, 'proto', 'rpc.proto');
// etcd3's own options (lib/connection-pool.js); keepCase must hold when the .proto is parsed.
const LOAD_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function rpcDescriptors() {
  const json = new protobuf.Root().loadSync(RPC_PROTO, { keepCase: true }).toJSON();
  // Every method must come out as loadSync makes it: same path, streaming and message shapes.
  const want = protoLoader.loadSync(RPC_PROTO, LOAD_OPTIONS);
  const got = protoLoader.fromJSON(json, LOAD_OPTIONS);
  const shape = (def) =>
    JSON.stringify(
      Object.keys(def)
        .sort()
        .map((name) => [
          name,
          def[name].format ??
            Object.entries(def[name]).map(([m, d]) => [m, d.path, d.requestStream, d.responseStream, d.requestType.type, d.responseType.type]),
        ]),
    );
  if (shape(want) !== shape(got)) throw new Error(`${RPC_PROTO}: the embedded descriptors differ from what loadSync builds`);
  return json;
}

const embedEtcdProtos = {
  name: 'embed-etcd3-protos',
  setup(build) {
    build.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, 'utf8');
      const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`,/g;
      const found = source.match(call)?.length ?? 0;
      if (found !== 1) throw new Error(`${args.path}: expected one loadSync of rpc.proto, found ${found}; etcd3 changed, update scripts/bundle.js`);
      return { contents: source.replace(call, () => `(0, proto_loader_1.fromJSON)(${JSON.stringify(rpcDescriptors())},`), loader: 'js' };
    });
  },
};

// Settings both parts share.
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  tsconfig: path.join(ROOT, 'tsconfig.json'),
  define: { ETCD_SHIELD_PACKAGE: JSON.stringify({ version: pkg.version, author: pkg.author }) },
  // The one-file copy is SHIELD's plugin, and SHIELD keeps the archives itself.
  // A native module cannot live in one JS file, and the AWS SDK and age would
  // more than double the file that node reads on every SHIELD call (docs/
  // performance.md, "Start-up"): without node_modules beside it, the copy says
  // zstd, S3 and age are missing (src/pipeline/, src/store/open.ts).
  // yaml and croner serve only `serve`, which SHIELD never runs (170 KiB more to compile on every call).
  external: ['zstd-napi', '@aws-sdk/*', 'age-encryption', 'yaml', 'croner', 'fastify', 'prom-client', 'pino', 'pino-pretty'],
  // Names stay: error classes report new.target.name.
  minify: true,
  keepNames: true,
  logLevel: 'warning',
  metafile: true,
  write: false,
};

/**
 * SHIELD runs `info` on every plugin, and node parses a whole file before it
 * runs a line: 700 KiB of code cost a sixth of node's own start-up, and even
 * as a string literal it is copied (docs/performance.md, "Start-up").
 * So the file is a small launcher that answers info, and carries the rest
 * (src/cli/main.ts and every dependency) on its last line as a comment, which
 * the parser skips; other commands read that line back and compile it.
 */
const PAYLOAD_MARK = '\n//';
const embedMain = {
  name: 'embed-cli-main',
  setup(build) {
    build.onResolve({ filter: /^\.\/cli\/main$/ }, (args) => ({ path: args.path, namespace: 'embedded-main' }));
    build.onLoad({ filter: /.*/, namespace: 'embedded-main' }, () => ({
      loader: 'js',
      contents: [
        "const { readFileSync } = require('node:fs');",
        "const { compileFunction } = require('node:vm');",
        "const file = readFileSync(__filename, 'latin1');",
        `const line = file.slice(file.lastIndexOf(${JSON.stringify(PAYLOAD_MARK)}) + ${PAYLOAD_MARK.length}).trimEnd();`,
        'const source = JSON.parse(line);',
        "compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: __filename })(exports, require, module, __filename, __dirname);",
      ].join('\n'),
    }));
  },
};

function checked(result, what) {
  if (result.errors.length || result.warnings.length) throw new Error(`esbuild reported problems building ${what} (above)`);
  return result;
}

async function bundle() {
  const main = checked(
    await esbuild.build({ ...common, entryPoints: [path.join(ROOT, 'src', 'cli', 'main.ts')], outfile: 'main.js', legalComments: 'external', plugins: [embedEtcdProtos] }),
    'src/cli/main.ts',
  );
  const launcher = checked(
    await esbuild.build({
      ...common,
      entryPoints: [path.join(ROOT, 'src', 'entry.ts')],
      outfile: OUT,
      banner: { js: `${shebang}\n// etcd-shield v${pkg.version}, built by scripts/bundle.js: run it as a SHIELD plugin or a CLI.` },
      plugins: [embedMain],
    }),
    'src/entry.ts',
  );
  const out = (name) => main.outputFiles.find((f) => f.path.endsWith(name))?.text ?? '';
  const legal = out('.LEGAL.txt').trim();
  const payload = JSON.stringify(out('main.js'));
  // One line, read back as latin1: esbuild writes ASCII (its default charset).
  if (!/^[\x20-\x7e]*$/.test(payload)) throw new Error('the bundled code is not printable ASCII on one line');
  const text = [
    launcher.outputFiles[0].text.trimEnd(),
    ...(legal ? [`/*! Licenses of the bundled packages:\n${legal.replace(/\*\//g, '* /')}\n*/`] : []),
    `//${payload}`,
    '',
  ].join('\n');
  fs.writeFileSync(OUT, text, { mode: 0o755 });
  fs.chmodSync(OUT, 0o755);
  return { inputs: new Set([...Object.keys(main.metafile.inputs), ...Object.keys(launcher.metafile.inputs)]).size };
}

bundle().then(
  (r) => {
    const bytes = fs.statSync(OUT).size;
    process.stdout.write(`wrote ${path.relative(ROOT, OUT)}: ${(bytes / 1024).toFixed(0)} KiB from ${r.inputs} files\n`);
  },
  (err) => {
    process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

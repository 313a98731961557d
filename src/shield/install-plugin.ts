import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileError, UsageError } from '../errors';
import { printReport } from '../cli/stdout';
import { BUNDLED, TOOL_NAME, TOOL_VERSION } from '../version';

// SHIELD's agent lists a plugin only if it is a regular file with an execute
// bit (find DIR -maxdepth 1 -type f -perm /111): a symlink is skipped, and a
// copy of bin/etcd-shield would look for ../dist. So the plugin is a copy of
// the one-file build, which needs nothing but node.

export interface InstallOptions {
  dir: string;
  /** File name in dir; SHIELD calls the plugin by it. */
  name: string;
  /** Replace a different file of that name. */
  force: boolean;
  /** The one-file build to copy. */
  source: string;
}

export interface InstallResult {
  path: string;
  source: string;
  bytes: number;
  /** What was at path before: nothing, the same program, or something else (replaced with force). */
  was: 'absent' | 'same' | 'different';
}

/** The one-file build: this very file when running from it, else dist/etcd-shield.js beside dist/src. */
export function bundleFile(): string {
  return BUNDLED ? __filename : path.join(__dirname, '..', '..', 'etcd-shield.js');
}

const code = (err: unknown) => (err as NodeJS.ErrnoException)?.code ?? String(err);

function readSource(source: string): Buffer {
  try {
    return fs.readFileSync(source);
  } catch (err) {
    throw new FileError(`cannot read the one-file build ${source}: ${code(err)}`, 'run `npm run build` in the etcd-shield checkout, which writes dist/etcd-shield.js');
  }
}

/** Whether target already is this program as the agent would run it. */
function compare(target: string, content: Buffer, force: boolean): InstallResult['was'] {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(target);
  } catch (err) {
    if (code(err) === 'ENOENT') return 'absent';
    throw new FileError(`cannot inspect ${target}: ${code(err)}`, 'check the directory\'s permissions');
  }
  if (st.isDirectory()) throw new FileError(`${target} is a directory`, 'choose another --name, or move the directory away');
  if (st.isFile() && st.mode & 0o111 && st.size === content.length && fs.readFileSync(target).equals(content)) return 'same';
  if (!force) {
    const what = st.isSymbolicLink() ? 'a symbolic link (which SHIELD\'s agent does not list)' : 'a different file';
    throw new UsageError(`${target} already exists and is ${what}; it was left as it is`, 'add --force to replace it, or choose another --name');
  }
  return 'different';
}

/**
 * Writes dir/name as a regular executable copy of the one-file build. The copy
 * is written under a temporary name, without execute bits until it is
 * complete and on disk, then renamed into place: the agent never runs half a file.
 */
export function installPlugin(o: InstallOptions): InstallResult {
  if (!o.name || o.name === '.' || o.name === '..' || o.name.includes('/') || o.name.includes('\0')) {
    throw new UsageError(`--name ${JSON.stringify(o.name)} is not a file name`, 'give a plain name such as etcd (the name SHIELD calls the plugin by)');
  }
  const dir = path.resolve(o.dir);
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new FileError(`plugin directory ${dir} ${st ? 'is not a directory' : 'does not exist'}`, 'give the directory SHIELD\'s agent loads plugins from (its plugin_paths), or create it first');
  const source = path.resolve(o.source);
  const content = readSource(source);
  const target = path.join(dir, o.name);
  const was = compare(target, content, o.force);
  if (was === 'same') return { path: target, source, bytes: content.length, was };

  const tmp = path.join(dir, `.${o.name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeFileSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new FileError(`cannot write ${target}: ${code(err)}`, 'check that the directory is writable (run as the user that owns it, e.g. with sudo)', { cause: err });
  }
  return { path: target, source, bytes: content.length, was };
}

export function describeInstall(r: InstallResult): string {
  const what = `${TOOL_NAME} v${TOOL_VERSION}, ${Math.round(r.bytes / 1024)} KiB, a copy of ${r.source}`;
  const done = { absent: `installed ${r.path}`, different: `replaced ${r.path}`, same: `${r.path} is up to date` }[r.was];
  return `${done} (${what})\ncheck it (it prints the plugin's JSON): ${r.path} info`;
}

/** The install-plugin command. */
export function runInstallPlugin(dir: string, opts: { name: string; force?: boolean }): void {
  printReport(describeInstall(installPlugin({ dir, name: opts.name, force: Boolean(opts.force), source: bundleFile() })));
}

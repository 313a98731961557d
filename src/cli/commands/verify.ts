import { verify } from '../../api/verify';
import { parseTime } from '../../catalogue/select';
import { ArchiveError, EncryptionError, type ShieldError, UsageError } from '../../errors';
import { humanBytes } from '../../util/format';
import type { RunContext } from '../context';
import { Progress } from '../progress';
import { printReport } from '../stdout';
import { readIdentities } from '../identities';
import { type StoreFlags, storeOptions } from '../store-flags';

export interface VerifyCommandOptions extends StoreFlags {
  in?: string;
  from?: string;
  backup?: string;
  before?: string;
  all?: boolean;
  identity?: string[];
  json?: boolean;
}

/** Reads an archive end to end without etcd and prints what it holds. */
export async function runVerify(opts: VerifyCommandOptions, ctx: RunContext): Promise<void> {
  if (opts.from) return runStoreVerify(opts.from, opts, ctx);
  if (opts.all || opts.backup !== undefined || opts.before !== undefined) throw new UsageError('--all, --backup and --before pick backups in a store', 'add --from DIR or --from s3://bucket/path');
  const s = await verify(opts.in ? { file: opts.in } : process.stdin, { signal: ctx.signal, inputName: 'standard input', identities: await readIdentities(opts.identity) });
  if (opts.json) {
    printReport(JSON.stringify(s, null, 2));
    return;
  }
  if (s.snapshot) {
    const snap = s.snapshot;
    const rows: [string, string][] = [
      ['snapshot', `intact (${snap.trailer === 'matched' ? 'sha256 trailer matched' : 'no sha256 trailer: a bbolt file without one, so only its structure was checked'}; meta pages, the B+tree's ${snap.pages} page${snap.pages === 1 ? '' : 's'} and every entry read)`],
      ['format', 'etcd-snapshot (bbolt)'],
      ['revision', `${s.revision}${snap.compactRevision === '0' ? ' (never compacted: every revision from 1 can be restored)' : `, compacted at ${snap.compactRevision} (--to-revision ${snap.compactRevision}..${s.revision} can be restored)`}`],
      ['keys', `${s.keys} at revision ${s.revision}`],
      ['leases', String(s.leases)],
      ['trailer', snap.trailer === 'matched' ? 'present, sha256 matched' : 'absent'],
      ['bytes', `${s.bytes} (${humanBytes(s.bytes)})`],
    ];
    if (snap.otherMetaProblem) rows.push(['warning', `meta page ${1 - snap.metaPage} is unusable (${snap.otherMetaProblem}); meta page ${snap.metaPage} was read`]);
    printReport(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
    return;
  }
  const legacy = s.format === 'legacy';
  const rows: [string, string][] = [
    ['archive', `intact (${legacy ? 'legacy format: every line parses; it has no checksum' : 'structure, count and sha256 verified'})`],
    ['format', s.format],
    ['revision', s.revision ?? 'not recorded (legacy)'],
    ['keys', String(s.keys)],
    ['leases', legacy ? 'not recorded (legacy)' : String(s.leases)],
    ['bytes', `${s.bytes} (${humanBytes(s.bytes)})`],
    ['prefix', s.prefix !== null ? JSON.stringify(s.prefix) : 'not recorded (legacy)'],
    ['cluster', s.clusterId ?? 'not recorded (legacy)'],
    ['taken', s.createdAt ?? 'not recorded (legacy)'],
  ];
  printReport(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
}

/** Not checked: it could not be decrypted with the identities given. */
const LOCKED = 'LOCKED   ';

/** Checks stored backups end to end; the exit code is 0 only if every one is intact. */
async function runStoreVerify(from: string, opts: VerifyCommandOptions, ctx: RunContext): Promise<void> {
  if (opts.in) throw new UsageError('give either --in FILE or --from STORE, not both');
  if (opts.all && (opts.backup !== undefined || opts.before !== undefined)) throw new UsageError('--all checks every backup; drop --backup and --before');
  const progress = new Progress();
  let report;
  try {
    report = await (await import('../../api/verify-store')).verifyStore(from, {
      ...storeOptions(opts),
      all: opts.all,
      name: opts.backup,
      before: opts.before === undefined ? undefined : parseTime(opts.before, '--before'),
      identities: await readIdentities(opts.identity),
      signal: ctx.signal,
      onProgress: progress.onEvent,
    });
  } finally {
    progress.stop();
  }
  const changes = await (await import('../../api/verify-changes')).verifyChanges(from, { ...storeOptions(opts), identities: await readIdentities(opts.identity), signal: ctx.signal });
  const failed = report.checks.filter((c) => !c.ok).length + report.problems.length + changes.failed.length;
  if (opts.json) {
    printReport(
      JSON.stringify(
        {
          store: report.store,
          ok: report.ok,
          backups: report.checks.map((c) => ({ name: c.backup.name, ok: c.ok, ...(c.archive ? { archive: c.archive } : {}), ...(c.error ? { error: c.error.message, hint: c.error.hint, undecrypted: c.undecrypted } : {}) })),
          problems: report.problems,
          changes: { segments: changes.segments, events: changes.events, failed: changes.failed, breaks: changes.breaks, windows: changes.windows },
        },
        null,
        2,
      ),
    );
  } else {
    const lines = report.checks.map((c) =>
      c.ok
        ? `ok       ${c.backup.name}  revision ${c.archive?.revision}, ${c.archive?.keys} keys, ${c.archive?.leases} leases, ${humanBytes(c.backup.archive.size)} stored`
        : `${c.undecrypted ? LOCKED : 'FAILED   '}${c.backup.name}  ${c.error?.message}`,
    );
    for (const p of report.problems) lines.push(`FAILED   ${p.key}  ${p.message}`);
    for (const p of changes.failed) lines.push(`${p.undecrypted ? LOCKED : 'FAILED   '}${p.key}  ${p.message}`);
    printReport(lines.join('\n'));
  }
  if (changes.segments) {
    ctx.say(`change log: ${changes.segments - changes.failed.length} segments intact (${changes.events} events)${changes.failed.length ? `, ${changes.failed.length} damaged` : ''}; windows: ${(await import('../../changes/chain')).describeWindows(changes.windows)}`);
    for (const b of changes.breaks) ctx.say(`note: no segment holds revisions ${b.after + 1} to ${b.next - 1} (a gap: restore cannot reach them)`);
  }
  if (failed) {
    const undecrypted = report.checks.filter((c) => c.undecrypted).length + changes.failed.filter((f) => f.undecrypted).length;
    const things = changes.segments ? 'backups and change segments' : 'backups';
    throw verifyFailure(`${report.checks.length + report.problems.length + changes.segments} ${things} in ${report.store}`, failed, undecrypted);
  }
  ctx.say(`verify done: ${report.checks.length} backup${report.checks.length === 1 ? '' : 's'} in ${report.store} intact`);
}

/**
 * A backup that could not be decrypted is not known to be damaged: saying
 * "do not rely on it" would send an operator who forgot --identity, or gave
 * the wrong key, to throw good backups away.
 */
function verifyFailure(of: string, failed: number, locked: number): ShieldError {
  const damaged = failed - locked;
  const keyHint = 'give the age identity file of the recipient they were encrypted to (--identity FILE, repeatable) and run verify again';
  if (damaged === 0) {
    return new EncryptionError(`${locked} of ${of} could not be decrypted with the identities given, so they were not checked`, keyHint);
  }
  const also = locked ? `, and ${locked} could not be decrypted with the identities given (not checked)` : '';
  return new ArchiveError(
    `${damaged} of ${of} failed verification${also}`,
    `do not rely on the failed backups; take a new backup and check the store${locked ? `; for the others, ${keyHint}` : ''}`,
  );
}

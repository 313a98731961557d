// The stages between an archive and its stored bytes (compress, encrypt, and
// back), against the real tools: zstd, gzip, age and age-keygen read what we
// write and we read what they write. Damage and truncation must fail as
// ArchiveError, a key that does not fit as EncryptionError, never silently.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { ArchiveError, ConfigError, EncryptionError } from '../src/errors';
import { compressor, decompressor } from '../src/pipeline/compression';
import { Digest } from '../src/pipeline/digest';
import { decryptor, encryptor, parseRecipients, readIdentityFile, readRecipientsFile } from '../src/pipeline/encryption';
import { decodeStages, detectStoredForm, encodeStages, openStored, storedExtension } from '../src/pipeline/stages';
import { COMPRESSIONS, type Compression, type StoredForm } from '../src/pipeline/types';
import { repoRoot } from './cli';

const TOOLS = ['age', 'age-keygen', 'zstd', 'gzip'];

let dir: string;
/** Two key pairs made by age-keygen; identity files in its own format. */
let keys: { file: string; identity: string; recipient: string }[];

before(() => {
  for (const tool of TOOLS) {
    try {
      execFileSync('which', [tool], { stdio: 'pipe' });
    } catch {
      throw new Error(`${tool} is not installed; these tests need the real tool (apt-get install age zstd gzip)`);
    }
  }
  dir = mkdtempSync(join(tmpdir(), 'etcd-shield-pipeline-'));
  keys = [1, 2].map((n) => {
    const file = join(dir, `key${n}.txt`);
    execFileSync('age-keygen', ['-o', file], { stdio: 'pipe' });
    const identity = readFileSync(file, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
    const recipient = execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim();
    return { file, identity, recipient };
  });
});

after(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------

/** 3 MB of JSON-like records that compress, then 2 MB that does not. It starts as no stored form does, like an archive. */
const TEXT = Buffer.from(Array.from({ length: 30_000 }, (_, i) => `{"key":"/registry/pods/ns-${i % 40}/pod-${i}","rev":${i},"phase":"Running"}\n`).join(''));
const MIXED = Buffer.concat([TEXT, randomBytes(2_000_000)]);
const INPUTS: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['5 MB mixed', MIXED],
];
const FORMS: StoredForm[] = COMPRESSIONS.flatMap((compression) => [false, true].map((encrypted) => ({ compression, encrypted })));
const formName = (f: StoredForm) => `${f.compression}${f.encrypted ? '+age' : ''}`;

/** A stream of `data` in 64 KiB chunks, as files and sockets deliver it. */
function chunked(data: Buffer, size = 64 * 1024): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
  return Readable.from(chunks, { objectMode: false });
}

async function collect(source: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of source) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function through(data: Buffer, stages: Duplex[], writeSize?: number): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline([chunked(data, writeSize), ...stages, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) })]);
  return Buffer.concat(out);
}

const encode = (data: Buffer, form: StoredForm, recipients = [keys[0].recipient]) => through(data, encodeStages(form, recipients));
const decode = (stored: Buffer, form: StoredForm, identities = [keys[0].identity], name = 'test.archive') => through(stored, decodeStages(form, identities, name));
const open = (stored: Buffer, opts: { identities?: string[]; form?: StoredForm; name?: string } = {}) =>
  openStored(chunked(stored), { identities: opts.identities ?? [keys[0].identity], name: opts.name ?? 'test.archive', form: opts.form }).then(collect);

/** Runs a real tool; its stdout, or a failure with its stderr. */
function tool(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
    child.stdin.on('error', () => undefined); // a tool that fails early closes its stdin
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

function file(name: string, data: Buffer | string): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

const flipped = (data: Buffer, at: number, to = data[at] ^ 0x5a) => {
  const copy = Buffer.from(data);
  copy[at] = to;
  return copy;
};
/** Another base64 character in place of the one at `at`, so that age's header still parses. */
const rebased = (data: Buffer, at: number) => flipped(data, at, data[at] === 0x41 ? 0x42 : 0x41);

/** Where an age file's payload starts: after the header's MAC line and the 16-byte nonce. */
function agePayloadStart(stored: Buffer): number {
  const mac = stored.indexOf('\n--- ');
  return stored.indexOf('\n', mac + 1) + 1 + 16;
}

async function rejectsAs(p: Promise<unknown>, kind: new (...a: never[]) => Error, message?: RegExp): Promise<Error> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof kind, `expected ${kind.name}, got ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : 'success'}`);
  if (message) assert.match(err.message, message);
  assert.doesNotMatch(err.message, /AGE-SECRET-KEY/, 'no message shows a secret key');
  return err;
}

// ---------------------------------------------------------------------------

describe('round trips', () => {
  for (const form of FORMS) {
    for (const [what, data] of INPUTS) {
      test(`${formName(form)}, ${what}: decodeStages and openStored (with and without the form) give the input back`, async () => {
        const stored = await encode(data, form);
        if (form.compression !== 'none' && data.length > 0) assert.ok(stored.length < data.length, 'the JSON part compresses');
        if (form.encrypted) assert.ok(!stored.includes(TEXT.subarray(0, 100)), 'nothing readable passes encryption');
        assert.ok((await decode(stored, form)).equals(data), 'decodeStages');
        assert.ok((await open(stored)).equals(data), 'openStored, detected');
        assert.ok((await open(stored, { form })).equals(data), 'openStored, form given');
      });
    }
  }

  test('zstd finds matches across its 1 MiB jobs: a repeated random MiB stores about once', async () => {
    const block = randomBytes(1024 * 1024);
    const data = Buffer.concat([block, block, block, block]);
    const stored = await through(data, [compressor('zstd')]);
    // Without a window of overlap each job starts blind and the four copies store as four.
    assert.ok(stored.length < 1.5 * block.length, `${stored.length} bytes stored for 4 copies of 1 MiB`);
    assert.ok((await through(stored, [decompressor('zstd')])).equals(data));
  });

  test('a Digest counts and hashes what passes, unchanged', async () => {
    for (const data of [Buffer.alloc(0), MIXED]) {
      const digest = new Digest();
      assert.ok((await through(data, [digest])).equals(data));
      assert.equal(digest.bytes, data.length);
      assert.equal(digest.sha256(), createHash('sha256').update(data).digest('hex'));
    }
  });

  test('storedExtension names each form', () => {
    assert.deepEqual(
      FORMS.map((f) => storedExtension(f)),
      ['.zst', '.zst.age', '.gz', '.gz.age', '', '.age'],
    );
  });
});

describe('the real tools read what we write, and we read what they write', () => {
  test('our zstd and gzip decompress with zstd -d and gzip -d', async () => {
    assert.ok((await tool('zstd', ['-d', '-c'], await through(MIXED, [compressor('zstd')]))).equals(MIXED));
    assert.ok((await tool('gzip', ['-d', '-c'], await through(MIXED, [compressor('gzip')]))).equals(MIXED));
  });

  test('zstd (plain and multi-threaded, level 19) and gzip output decompresses with ours', async () => {
    for (const args of [['-c'], ['-c', '-T2'], ['-c', '-19']]) {
      const z = await tool('zstd', args, MIXED);
      assert.ok((await through(z, [decompressor('zstd')])).equals(MIXED), `zstd ${args.join(' ')}`);
    }
    for (const level of ['-1', '-9']) {
      const g = await tool('gzip', ['-c', level], MIXED);
      assert.ok((await through(g, [decompressor('gzip')])).equals(MIXED), `gzip ${level}`);
    }
  });

  test('our zstd+age decrypts with age -d -i key.txt, then zstd -d', async () => {
    const stored = file('ours.zst.age', await encode(MIXED, { compression: 'zstd', encrypted: true }));
    const plain = await tool('zstd', ['-d', '-c'], await tool('age', ['-d', '-i', keys[0].file, stored]));
    assert.ok(plain.equals(MIXED));
  });

  test('age payload at the 64 KiB chunk edges, in odd write sizes: age -d reads ours, ours reads age -r, and ours refuses a cut at each edge', async () => {
    const K = 64 * 1024;
    for (const size of [0, 1, K - 1, K, K + 1, 2 * K, 3 * K + 7]) {
      const data = MIXED.subarray(0, size);
      for (const writes of [7, 4096, K + 3]) {
        const ours = await through(data, [encryptor([keys[0].recipient])], writes);
        assert.ok((await tool('age', ['-d', '-i', keys[0].file], ours)).equals(data), `age -d of ours, ${size} bytes in writes of ${writes}`);
      }
      const byAge = await tool('age', ['-r', keys[0].recipient], data);
      for (const writes of [5, 1000, K + 16, K + 17, 3 * K]) {
        const out = await through(byAge, [decryptor([keys[0].identity], 'edge.age')], writes);
        assert.ok(out.equals(data), `ours of age -r, ${size} bytes in writes of ${writes}`);
      }
      // A cut just after each whole sealed chunk: the last one left was sealed without the last-chunk flag.
      const start = agePayloadStart(byAge);
      for (let cut = start + K + 16; cut < byAge.length; cut += K + 16) {
        await rejectsAs(through(byAge.subarray(0, cut), [decryptor([keys[0].identity], 'edge.age')]), ArchiveError, /^edge\.age cannot be decrypted: its encrypted data is damaged or cut short/);
      }
    }
  });

  test('age -r output decrypts with ours; zstd | age -R recipients-file is detected and opened as zstd inside age', async () => {
    const byAge = await tool('age', ['-r', keys[0].recipient], MIXED);
    assert.ok((await through(byAge, [decryptor([keys[0].identity], 'by-age')])).equals(MIXED));
    const recipientsFile = file('age-recipients.txt', `${keys[0].recipient}\n`);
    const both = await tool('age', ['-R', recipientsFile], await tool('zstd', ['-c'], MIXED));
    assert.ok((await open(both, { form: { compression: 'zstd', encrypted: true } })).equals(MIXED));
  });

  test('a recipients file and identity files in the tools\' formats; two recipients, either identity decrypts (ours and age)', async () => {
    const recipientsFile = file('recipients.txt', `# team keys\n\n${keys[0].recipient}\n  # second\n${keys[1].recipient}\r\n\n`);
    const recipients = await readRecipientsFile(recipientsFile);
    assert.deepEqual(recipients, [keys[0].recipient, keys[1].recipient]);
    const stored = await encode(MIXED, { compression: 'gzip', encrypted: true }, recipients);
    const storedFile = file('two.gz.age', stored);
    for (const key of keys) {
      const identities = await readIdentityFile(key.file);
      assert.deepEqual(identities, [key.identity], 'age-keygen\'s file: comments skipped, one identity');
      assert.ok((await open(stored, { identities })).equals(MIXED), `ours with ${key.file}`);
      assert.ok((await tool('gzip', ['-d', '-c'], await tool('age', ['-d', '-i', key.file, storedFile]))).equals(MIXED), `age with ${key.file}`);
    }
    // An identity file holding both keys (cat key1.txt key2.txt), as age accepts it.
    const bothKeys = file('both-keys.txt', readFileSync(keys[0].file, 'utf8') + readFileSync(keys[1].file, 'utf8'));
    assert.equal((await readIdentityFile(bothKeys)).length, 2);
    const toSecond = await encode(MIXED, { compression: 'none', encrypted: true }, [keys[1].recipient]);
    assert.ok((await open(toSecond, { identities: await readIdentityFile(bothKeys) })).equals(MIXED));
  });
});

describe('keys that do not fit, and bad key files', () => {
  test('a wrong identity is an EncryptionError that names the data and shows no secret', async () => {
    const stored = await encode(MIXED, { compression: 'zstd', encrypted: true }, [keys[0].recipient]);
    const expected = /^none of the given identities can decrypt backup-1\.zst\.age: it was encrypted to other recipients, or its age header is damaged$/;
    const err = (await rejectsAs(open(stored, { identities: [keys[1].identity], name: 'backup-1.zst.age' }), EncryptionError, expected)) as EncryptionError;
    assert.ok(!err.message.includes(keys[1].identity) && !err.hint.includes('AGE-SECRET'));
    await rejectsAs(decode(stored, { compression: 'zstd', encrypted: true }, [keys[1].identity], 'backup-1.zst.age'), EncryptionError, expected);
  });

  test('encrypted data without identities asks for --identity', async () => {
    const stored = await encode(MIXED, { compression: 'none', encrypted: true });
    await rejectsAs(open(stored, { identities: [], name: 'b.age' }), EncryptionError, /^b\.age is encrypted with age; give --identity FILE$/);
    assert.throws(() => decodeStages({ compression: 'none', encrypted: true }, [], 'b.age'), EncryptionError);
  });

  test('identity files: missing, empty, an encrypted one, a damaged key; errors name the file and line, never the key', async () => {
    const missing = join(dir, 'no-such-key.txt');
    await rejectsAs(readIdentityFile(missing), EncryptionError, new RegExp(`cannot read identity file ${missing}: .*ENOENT`));
    await rejectsAs(readIdentityFile(file('comments-only.txt', '# created: today\n\n')), EncryptionError, /holds no age identity/);
    const damagedKey = keys[0].identity.slice(0, 30) + (keys[0].identity[30] === 'Q' ? 'P' : 'Q') + keys[0].identity.slice(31);
    const damaged = file('damaged-key.txt', `# created: today\n${damagedKey}\n`);
    const err = await rejectsAs(readIdentityFile(damaged), EncryptionError, new RegExp(`identity file ${damaged} line 2 is not a valid age identity`));
    assert.ok(!err.message.includes(damagedKey.slice(16)));
    await rejectsAs(readIdentityFile(file('ssh-key.txt', '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n')), EncryptionError, /line 1 is a PEM block/);
    const protectedKey = await tool('age', ['-r', keys[1].recipient], readFileSync(keys[0].file));
    await rejectsAs(readIdentityFile(file('protected-key.age', protectedKey)), EncryptionError, /is itself encrypted/);
  });

  test('bad recipients: a typo, a secret key, an SSH key, a post-quantum one; each named by where it came from', async () => {
    const typo = `${keys[0].recipient.slice(0, -1)}${keys[0].recipient.endsWith('q') ? 'p' : 'q'}`;
    assert.throws(() => parseRecipients([keys[0].recipient, typo], '--encrypt-to'), (e: Error) => {
      assert.ok(e instanceof EncryptionError);
      assert.match(e.message, /^--encrypt-to value 2: ".*" is not a valid age X25519 recipient/);
      assert.ok(e.message.includes(typo), 'recipients are public: the bad one is shown');
      return true;
    });
    assert.throws(() => parseRecipients([keys[0].identity], '--encrypt-to'), (e: Error) => {
      assert.ok(e instanceof EncryptionError && /value 1: this is an age identity \(a secret key\)/.test(e.message));
      assert.ok(!e.message.includes(keys[0].identity.slice(16)));
      return true;
    });
    assert.throws(() => parseRecipients(['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host'], '--encrypt-to'), /is an SSH key/);
    const age = require('age-encryption') as typeof import('age-encryption');
    const pq = await age.identityToRecipient(await age.generateHybridIdentity());
    assert.throws(() => parseRecipients([pq], '--encrypt-to'), /post-quantum or plugin recipient/);
    assert.deepEqual(parseRecipients([` ${keys[0].recipient} `, keys[0].recipient, keys[1].recipient], '--encrypt-to'), [keys[0].recipient, keys[1].recipient]);
    const withTypo = file('recipients-typo.txt', `# ops\n${keys[0].recipient}\n${typo}\n`);
    await rejectsAs(readRecipientsFile(withTypo), EncryptionError, new RegExp(`^recipients file ${withTypo} line 3: `));
    await rejectsAs(readRecipientsFile(file('recipients-none.txt', '# nobody\n')), EncryptionError, /holds no recipient/);
    assert.throws(() => encryptor([]), EncryptionError);
  });
});

describe('damaged and truncated stored data fails, never passes', () => {
  const cases: [string, StoredForm][] = [
    ['zstd', { compression: 'zstd', encrypted: false }],
    ['gzip', { compression: 'gzip', encrypted: false }],
    ['age', { compression: 'none', encrypted: true }],
    ['zstd+age', { compression: 'zstd', encrypted: true }],
  ];
  for (const [what, form] of cases) {
    test(`${what}: a changed byte in the middle, and cuts anywhere, are ArchiveErrors`, async () => {
      const stored = await encode(MIXED, form);
      const middle = flipped(stored, Math.floor(stored.length / 2));
      assert.notDeepEqual(middle, stored);
      await rejectsAs(decode(middle, form), ArchiveError, /test\.archive/);
      await rejectsAs(open(middle), ArchiveError);
      // Early, mid-way, one byte short; for age also right after a full 64 KiB chunk (STREAM's last-chunk flag catches it).
      const start = agePayloadStart(stored);
      const chunkBoundary = start + Math.floor((stored.length - start - 1) / (64 * 1024 + 16)) * (64 * 1024 + 16);
      const cuts = [200, Math.floor(stored.length / 2), stored.length - 1, ...(form.encrypted ? [chunkBoundary] : [])];
      for (const cut of cuts) {
        const truncated = stored.subarray(0, cut);
        assert.ok(truncated.length < stored.length);
        await rejectsAs(decode(truncated, form), ArchiveError, /test\.archive/);
        await rejectsAs(open(truncated), ArchiveError);
      }
    });
  }

  test('truncated zstd and gzip say so; corrupt zstd and gzip name the format', async () => {
    const z = await encode(MIXED, { compression: 'zstd', encrypted: false });
    await rejectsAs(decode(z.subarray(0, z.length - 3), { compression: 'zstd', encrypted: false }), ArchiveError, /^test\.archive is not valid zstd: .*truncated/);
    const g = await encode(MIXED, { compression: 'gzip', encrypted: false });
    await rejectsAs(decode(g.subarray(0, g.length - 3), { compression: 'gzip', encrypted: false }), ArchiveError, /^test\.archive is not valid gzip: .*truncated/);
    await rejectsAs(through(Buffer.from('not zstd at all, not at all'), [decompressor('zstd', 'x')]), ArchiveError, /^x is not valid zstd/);
    await rejectsAs(through(Buffer.from('not gzip at all, not at all'), [decompressor('gzip', 'x')]), ArchiveError, /^x is not valid gzip/);
  });

  test('empty input is not a valid zstd, gzip or age file', async () => {
    for (const c of ['zstd', 'gzip'] as Compression[]) await rejectsAs(through(Buffer.alloc(0), [decompressor(c, 'x')]), ArchiveError, /^x is (empty|not valid)/);
    await rejectsAs(through(Buffer.alloc(0), [decryptor([keys[0].identity], 'x')]), ArchiveError, /^x cannot be decrypted: its age header/);
  });

  test('age header damage: a changed MAC is an ArchiveError; a changed recipient stanza cannot be told from a stanza for another key (EncryptionError naming both)', async () => {
    const stored = await encode(MIXED, { compression: 'none', encrypted: true });
    const text = stored.toString('latin1');
    const macAt = text.indexOf('\n--- ') + 6;
    await rejectsAs(open(rebased(stored, macAt)), ArchiveError, /its age header is damaged/);
    // A damaged first line is no longer age to detection; the manifest's form, or the decryptor, refuses it.
    await rejectsAs(open(flipped(stored, 3), { form: { compression: 'none', encrypted: true } }), ArchiveError, /is not age-encrypted, but its manifest says it is/);
    await rejectsAs(decode(flipped(stored, 3), { compression: 'none', encrypted: true }), ArchiveError, /its age header is damaged/);
    const stanzaBodyAt = text.indexOf('\n', text.indexOf('-> X25519')) + 3;
    await rejectsAs(open(rebased(stored, stanzaBodyAt)), EncryptionError, /encrypted to other recipients, or its age header is damaged/);
  });
});

describe('detecting the stored form', () => {
  test('detectStoredForm on each kind; armored age is refused with a way out', async () => {
    const form = async (f: StoredForm) => detectStoredForm((await encode(MIXED, f)).subarray(0, 64));
    assert.deepEqual(await form({ compression: 'zstd', encrypted: false }), { compression: 'zstd', encrypted: false });
    assert.deepEqual(await form({ compression: 'gzip', encrypted: false }), { compression: 'gzip', encrypted: false });
    assert.deepEqual(await form({ compression: 'gzip', encrypted: true }), { compression: undefined, encrypted: true });
    assert.deepEqual(detectStoredForm(Buffer.from('#etcd-shield-archive v1\n')), { compression: 'none', encrypted: false });
    assert.deepEqual(detectStoredForm(Buffer.from([0x1f])), { compression: 'none', encrypted: false }, 'too short to be gzip');
    assert.deepEqual(detectStoredForm(await tool('zstd', ['-c'], Buffer.alloc(0))), { compression: 'zstd', encrypted: false });
    const armored = await tool('age', ['-a', '-r', keys[0].recipient], MIXED.subarray(0, 1000));
    assert.throws(() => detectStoredForm(armored, 'a.age'), (e: Error) => e instanceof ArchiveError && /^a\.age is ASCII-armored age/.test(e.message) && /age -d/.test(e.hint));
    await rejectsAs(open(armored), ArchiveError, /ASCII-armored/);
  });

  test('openStored refuses data that is not what the manifest says, and destroys the input', async () => {
    const gz = await encode(MIXED, { compression: 'gzip', encrypted: false });
    const zstdAge = await encode(MIXED, { compression: 'zstd', encrypted: true });
    const refused = async (stored: Buffer, form: StoredForm, message: RegExp) => {
      const input = chunked(stored);
      await rejectsAs(openStored(input, { identities: [keys[0].identity], name: 'b', form }), ArchiveError, message);
      assert.ok(input.destroyed, 'the input is released');
    };
    await refused(gz, { compression: 'zstd', encrypted: false }, /^b holds gzip data, but its manifest says zstd$/);
    await refused(gz, { compression: 'gzip', encrypted: true }, /^b is not age-encrypted, but its manifest says it is$/);
    await refused(zstdAge, { compression: 'zstd', encrypted: false }, /^b is age-encrypted, but its manifest says it is not$/);
    await refused(zstdAge, { compression: 'gzip', encrypted: true }, /^b holds zstd data, but its manifest says gzip$/);
    await refused(TEXT, { compression: 'zstd', encrypted: false }, /^b holds uncompressed data, but its manifest says zstd$/);
    await refused(Buffer.alloc(0), { compression: 'none', encrypted: true }, /^b is empty$/);
    const wrongKey = chunked(zstdAge);
    await rejectsAs(openStored(wrongKey, { identities: [keys[1].identity], name: 'b' }), EncryptionError);
    assert.ok(wrongKey.destroyed);
  });

  test('an input that fails, closes or is already over near its first bytes: openStored settles, never hangs or crashes', async () => {
    const opts = { identities: [keys[0].identity], name: 'b' };
    // Failing in the same tick as its first bytes, and after openStored has answered but before anyone reads.
    const failsAtOnce = new Readable({ read() {} });
    failsAtOnce.push(TEXT.subarray(0, 1000));
    failsAtOnce.destroy(new Error('reset at once'));
    await assert.rejects(openStored(failsAtOnce, opts), /reset at once/);
    const failsLater = new PassThrough();
    failsLater.write(TEXT.subarray(0, 1000));
    const unread = await openStored(failsLater, opts);
    failsLater.destroy(new Error('reset before the read'));
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(collect(unread), /reset before the read/);
    const broken = new Readable({ read() {} });
    setImmediate(() => broken.destroy(new Error('connection reset')));
    await assert.rejects(openStored(broken, opts), /connection reset/);
    const alreadyBroken = new Readable({ read() {} });
    alreadyBroken.on('error', () => undefined).destroy(new Error('reset earlier'));
    await assert.rejects(openStored(alreadyBroken, opts), /reset earlier/);
    const closed = new Readable({ read() {} });
    setImmediate(() => closed.destroy());
    await assert.rejects(openStored(closed, opts), (e: NodeJS.ErrnoException) => e.code === 'ERR_STREAM_PREMATURE_CLOSE');
    const over = Readable.from([], { objectMode: false });
    over.resume();
    await new Promise((r) => over.once('end', r));
    assert.equal((await collect(await openStored(over, opts))).length, 0, 'an ended empty stream is an empty archive');
    // Cut short mid-head: whatever arrived, then the stream's own error.
    const cut = new Readable({ read() {} });
    cut.push(Buffer.from('age-encryption.org/v1\n'));
    setImmediate(() => cut.destroy(new Error('socket hang up')));
    await assert.rejects(openStored(cut, opts), /socket hang up/);
  });

  test('a reader that stops early releases the input', async () => {
    const input = chunked(await encode(MIXED, { compression: 'zstd', encrypted: true }));
    const plain = await openStored(input, { identities: [keys[0].identity], name: 'b' });
    for await (const chunk of plain) {
      assert.ok((chunk as Buffer).length > 0);
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(input.destroyed);
  });
});

describe('bounded memory', () => {
  /**
   * Writes 64 KiB chunks, honouring write() and 'drain', into a stage nobody
   * reads, until it stops asking for more; returns how much it took.
   */
  async function acceptedWhilePaused(stage: Duplex): Promise<number> {
    let accepted = 0;
    for (;;) {
      // Fresh random chunks: a repeated one would compress to nothing.
      while (stage.write(randomBytes(64 * 1024))) accepted += 64 * 1024;
      accepted += 64 * 1024;
      const drained = await Promise.race([new Promise((r) => stage.once('drain', () => r(true))), new Promise((r) => setTimeout(() => r(false), 300))]);
      if (!drained) return accepted;
      if (accepted > 64 * 1024 * 1024) return accepted;
    }
  }

  for (const form of FORMS.filter((f) => f.encrypted || f.compression !== 'none')) {
    test(`${formName(form)}: a producer sees backpressure after a bounded amount when nobody reads, and everything arrives once read`, async () => {
      const stages = encodeStages(form, [keys[0].recipient]);
      const head = stages[0];
      const tail = stages.reduce((prev, next) => (prev.pipe(next), next));
      const accepted = await acceptedWhilePaused(head);
      // Incompressible chunks: bytes in ≈ bytes held. zstd's worker holds a job or two.
      assert.ok(accepted < 8 * 1024 * 1024, `took ${(accepted / 1048576).toFixed(1)} MiB without a reader`);
      head.end();
      const stored = await collect(tail as Readable);
      const plain = await open(stored, { form });
      assert.equal(plain.length, accepted);
    });
  }

  test('encryption alone holds little: under 1 MiB taken while nobody reads', async () => {
    const stage = encryptor([keys[0].recipient]);
    const accepted = await acceptedWhilePaused(stage);
    assert.ok(accepted <= 1024 * 1024, `took ${(accepted / 1024).toFixed(0)} KiB without a reader`);
    stage.destroy();
  });

  test('zstd gets a thread of its own for archives, none for small objects (threaded: false), and both read back', async () => {
    const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
    const data = randomBytes(2 * 1024 * 1024);
    for (const threaded of [true, false]) {
      const stage = compressor('zstd', { threaded });
      const before = threads();
      // write() runs the compressor before it returns, so nothing else can start a thread in between.
      stage.write(data);
      assert.equal(threads() - before, threaded ? 1 : 0, `threaded: ${threaded}`);
      stage.end();
      assert.ok((await through(await collect(stage), [decompressor('zstd')])).equals(data));
    }
  });

  test('every stage destroyed part-way, without an error, closes without emitting one', async () => {
    const stored = await encode(MIXED, { compression: 'zstd', encrypted: true });
    const stages: [string, Duplex, Buffer][] = [
      ...COMPRESSIONS.map((c): [string, Duplex, Buffer] => [`compressor ${c}`, compressor(c), MIXED]),
      ['encryptor', encryptor([keys[0].recipient]), MIXED],
      ['decryptor', decryptor([keys[0].identity], 'x'), stored],
      ['decompressor zstd', decompressor('zstd'), await encode(MIXED, { compression: 'zstd', encrypted: false })],
      ['decompressor gzip', decompressor('gzip'), await encode(MIXED, { compression: 'gzip', encrypted: false })],
    ];
    for (const [what, stage, input] of stages) {
      const errors: Error[] = [];
      stage.on('error', (e) => errors.push(e));
      stage.write(input.subarray(0, 300_000));
      stage.once('data', () => undefined); // it runs a little
      await new Promise((r) => setTimeout(r, 30));
      stage.destroy();
      await new Promise((r) => stage.once('close', r));
      assert.deepEqual(errors, [], what);
    }
  });
});

describe('zstd is loaded only when used', () => {
  test('gzip and age stages do not load zstd-napi', () => {
    const script = `
      const s = require(${JSON.stringify(join(repoRoot, 'dist', 'src', 'pipeline', 'stages.js'))});
      s.encodeStages({ compression: 'gzip', encrypted: true }, [${JSON.stringify(keys[0].recipient)}]);
      s.decodeStages({ compression: 'none', encrypted: false }, [], 'x');
      const loaded = Object.keys(require.cache).some((k) => k.includes('zstd-napi'));
      s.encodeStages({ compression: 'zstd', encrypted: false }, []);
      console.log(JSON.stringify([loaded, Object.keys(require.cache).some((k) => k.includes('zstd-napi'))]));`;
    assert.deepEqual(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })), [false, true]);
  });

  test('a one-file build with no node_modules beside it reports zstd as missing (ConfigError, hint: gzip) and still does gzip', async () => {
    const esbuild = require('esbuild') as typeof import('esbuild');
    const out = join(dir, 'one-file', 'pipeline.js');
    const entry = file(
      'one-file-entry.ts',
      `import { compressor, decompressor } from ${JSON.stringify(join(repoRoot, 'src', 'pipeline', 'compression'))};
       import { pipeline } from 'node:stream/promises';
       import { Readable, Writable } from 'node:stream';
       const report: Record<string, unknown> = {};
       for (const [what, make] of [['compress', () => compressor('zstd')], ['decompress', () => decompressor('zstd')]] as const) {
         try { make(); report.loaded = true; } catch (e) { report[what] = [(e as Error).constructor.name, (e as Error).message, (e as { hint: string }).hint]; }
       }
       const out: Buffer[] = [];
       pipeline(Readable.from([Buffer.from('hello')]), compressor('gzip'), decompressor('gzip'), new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }))
         .then(() => { report.gzip = Buffer.concat(out).toString(); console.log(JSON.stringify(report)); });`,
    );
    // The bundle's own setting (scripts/bundle.js): zstd-napi stays outside.
    await esbuild.build({ entryPoints: [entry], outfile: out, bundle: true, platform: 'node', target: 'node20', format: 'cjs', external: ['zstd-napi'], logLevel: 'error' });
    const env = { ...process.env, NODE_PATH: '' };
    const report = JSON.parse(execFileSync(process.execPath, [out], { encoding: 'utf8', cwd: dir, env })) as Record<string, string[]> & { gzip: string };
    assert.equal(report.gzip, 'hello');
    assert.ok(!('loaded' in report), 'zstd-napi must not be found from the temp directory');
    assert.deepEqual(report.compress.slice(0, 1), [ConfigError.name]);
    assert.match(report.compress[1], /^zstd support is missing/);
    assert.match(report.compress[2], /--compress gzip/);
    assert.deepEqual(report.decompress.slice(0, 1), [ConfigError.name]);
    assert.match(report.decompress[2], /zstd -d/);
  });
});

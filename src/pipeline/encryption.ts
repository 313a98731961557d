import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { ArchiveError, EncryptionError, ShieldError } from '../errors';
import { AgeOpener, HeaderDamage, headerEnd, newPayloadNonce, PayloadDamage, payloadKey, PayloadSealer } from './age-payload';

type Age = typeof import('age-encryption');

let age: Age | undefined;

/** Loaded on first use, so that runs without encryption never parse it; the one-file SHIELD build leaves it out. */
function loadAge(): Age {
  try {
    return (age ??= require('age-encryption') as Age);
  } catch (err) {
    throw new EncryptionError(`age support is missing: age-encryption did not load (${(err as Error).message.split('\n')[0]})`, 'use the npm-installed etcd-shield for encrypted backups; the one-file SHIELD plugin leaves age out', { cause: err });
  }
}

const IDENTITY_PREFIX = 'AGE-SECRET-KEY-1';
const SHOWN_CHARS = 100;

/**
 * Checks that `value` is an X25519 age recipient (`age1...`, as age-keygen
 * prints it) and returns it trimmed. `where` names it in the error
 * ("--encrypt-to value 2", "recipients file /x line 3"). Recipients are
 * public and shown; a secret key given by mistake is not.
 */
export function checkRecipient(value: string, where: string): string {
  const r = value.trim();
  const refuse = (why: string, hint = 'give the recipient that age-keygen printed (age1..., or `age-keygen -y KEYFILE`)') =>
    new EncryptionError(`${where}: ${why}`, hint);
  if (/AGE-SECRET-KEY-/i.test(r)) throw refuse('this is an age identity (a secret key), not a recipient; it is not shown here');
  const shown = JSON.stringify(r.length > SHOWN_CHARS ? `${r.slice(0, SHOWN_CHARS)}...` : r);
  // The bech32 part before the last "1" is "age" for X25519; longer ones are post-quantum (age1pq1...) or plugins.
  if (r.startsWith('age1') && r.slice(0, r.lastIndexOf('1')) !== 'age') {
    throw refuse(`${shown} is a post-quantum or plugin recipient; only X25519 recipients (age1...) are supported`);
  }
  if (/^(ssh-|ecdsa-)/.test(r)) throw refuse(`${shown} is an SSH key; only X25519 age recipients (age1...) are supported`);
  const { Encrypter } = loadAge();
  try {
    new Encrypter().addRecipient(r);
  } catch {
    throw refuse(`${shown} is not a valid age X25519 recipient (age1... with a valid checksum)`);
  }
  return r;
}

/** Validates recipients given on the command line; `source` names the flag ("--encrypt-to"). Duplicates are dropped. */
export function parseRecipients(values: string[], source: string): string[] {
  return [...new Set(values.map((v, i) => checkRecipient(v, `${source} value ${i + 1}`)))];
}

async function readLines(path: string, what: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new EncryptionError(`cannot read ${what} ${path}: ${(err as Error).message}`, 'check the path and its permissions');
  }
  return text.split('\n').map((l) => l.trim());
}

const isContent = (line: string) => line !== '' && !line.startsWith('#');

/** An age recipients file: one recipient a line; `#` comments and blank lines are skipped. */
export async function readRecipientsFile(path: string): Promise<string[]> {
  const lines = await readLines(path, 'recipients file');
  const recipients = lines.flatMap((line, i) => (isContent(line) ? [checkRecipient(line, `recipients file ${path} line ${i + 1}`)] : []));
  if (recipients.length === 0) throw new EncryptionError(`recipients file ${path} holds no recipient`, 'put one age1... recipient a line in it');
  return [...new Set(recipients)];
}

/**
 * An identity file as age-keygen writes it: one secret key a line, `#`
 * comments and blank lines. Errors name the file and line, never its text.
 */
export async function readIdentityFile(path: string): Promise<string[]> {
  const lines = await readLines(path, 'identity file');
  const where = (i: number) => `identity file ${path} line ${i + 1}`;
  if (lines[0] === 'age-encryption.org/v1' || lines[0] === '-----BEGIN AGE ENCRYPTED FILE-----') {
    throw new EncryptionError(`identity file ${path} is itself encrypted (a passphrase-protected identity)`, 'decrypt it to a file only you may read (age -d -o key.txt FILE) and give that');
  }
  const identities: string[] = [];
  lines.forEach((line, i) => {
    if (!isContent(line)) return;
    if (!line.startsWith(IDENTITY_PREFIX)) {
      const kind = line.startsWith('AGE-SECRET-KEY-PQ-')
        ? 'a post-quantum identity'
        : line.startsWith('AGE-PLUGIN-')
          ? 'a plugin identity'
          : line.startsWith('-----BEGIN')
            ? 'a PEM block (an SSH key?)'
            : 'not an age identity';
      throw new EncryptionError(`${where(i)} is ${kind}; only X25519 identities, as age-keygen writes them, are supported`);
    }
    try {
      new (loadAge().Decrypter)().addIdentity(line);
    } catch {
      throw new EncryptionError(`${where(i)} is not a valid age identity (bad length or checksum)`, 'give the file age-keygen wrote, unchanged');
    }
    identities.push(line);
  });
  if (identities.length === 0) throw new EncryptionError(`identity file ${path} holds no age identity`, 'give the file that age-keygen wrote');
  return identities;
}

/**
 * A stage that encrypts what passes through it to every recipient (checked
 * already, e.g. by parseRecipients). age-encryption writes the header: a
 * recipient of our own that adds no stanza is handed the file key it wraps
 * for the others, and the payload is sealed with Node's native cipher.
 */
export function encryptor(recipients: string[]): Duplex {
  if (recipients.length === 0) throw new EncryptionError('no age recipient to encrypt to', 'give at least one age recipient (age1...)');
  const { Encrypter } = loadAge();
  const encrypter = new Encrypter();
  let fileKey: Uint8Array | undefined;
  encrypter.addRecipient({ wrapFileKey: (key: Uint8Array) => ((fileKey = key), []) });
  recipients.forEach((r, i) => {
    try {
      encrypter.addRecipient(r);
    } catch {
      throw new EncryptionError(`recipient ${i + 1} is not a valid age X25519 recipient`, 'validate recipients with parseRecipients or readRecipientsFile');
    }
  });
  const header = async () => {
    try {
      // An empty file: its header is ours, its payload (under another nonce) is dropped.
      const empty = Buffer.from(await encrypter.encrypt(new Uint8Array(0)));
      const end = headerEnd(empty);
      if (!fileKey || end < 0) throw new Error('age-encryption did not hand over the file key and header');
      const nonce = newPayloadNonce();
      return { prefix: Buffer.concat([empty.subarray(0, end), nonce]), key: payloadKey(fileKey, nonce) };
    } catch (err) {
      throw new EncryptionError(`age encryption failed: ${(err as Error).message}`);
    }
  };
  return new PayloadSealer(header);
}

/** What a key that fits none of the stanzas means, when the header is intact. */
export const OTHER_RECIPIENTS = 'it was encrypted to other recipients';

/** Identities were given and none unwrapped the file key: a wrong key, or a damaged stanza. */
export class NoIdentityMatched extends EncryptionError {}

/**
 * A stage that decrypts `name` (used in messages). No identity that matches
 * fails with an EncryptionError; a damaged or truncated file with an
 * ArchiveError. A damaged recipient stanza cannot be told from one for
 * another key, so the message names both (a store's fetch tells them
 * apart by the manifest's sha256).
 */
export function decryptor(identities: string[], name: string): Duplex {
  if (identities.length === 0) throw new EncryptionError(`${name} is encrypted with age; give --identity FILE`);
  const { Decrypter } = loadAge();
  const decrypter = new Decrypter();
  identities.forEach((id, i) => {
    try {
      decrypter.addIdentity(id);
    } catch {
      throw new EncryptionError(`identity ${i + 1} is not a valid age X25519 identity`, 'read identities with readIdentityFile');
    }
  });
  const headerDamaged = (why: string, cause?: unknown) => new ArchiveError(`${name} cannot be decrypted: its age header is damaged or cut short (${why})`, undefined, { cause });
  return new AgeOpener(
    async (header) => {
      try {
        return await decrypter.decryptHeader(header);
      } catch (err) {
        const why = (err as Error).message;
        if (/no identity matched/.test(why)) throw new NoIdentityMatched(`none of the given identities can decrypt ${name}: ${OTHER_RECIPIENTS}, or its age header is damaged`);
        throw headerDamaged(why, err);
      }
    },
    (err) => {
      if (err instanceof ShieldError) return err;
      if (err instanceof HeaderDamage) return headerDamaged(err.message);
      if (err instanceof PayloadDamage) return new ArchiveError(`${name} cannot be decrypted: its encrypted data is damaged or cut short (${err.message})`);
      return new ArchiveError(`${name} cannot be decrypted: ${(err as Error).message}`, undefined, { cause: err });
    },
  );
}

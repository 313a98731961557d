import { readIdentityFile } from '../pipeline/encryption';

/** The identities of every --identity file, in order (restore and verify; kept out of main's start-up). */
export async function readIdentities(files: string[] = []): Promise<string[]> {
  const all: string[] = [];
  for (const f of files) all.push(...(await readIdentityFile(f)));
  return all;
}

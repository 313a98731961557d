import { pipeline, Readable, type Writable } from 'node:stream';
import { encodeStages } from '../pipeline/stages';
import type { StoredForm } from '../pipeline/types';

/** A small object's bytes (in parts) as they are stored: compressed, then encrypted, as archives are. */
export function storedStream(parts: Buffer[], form: StoredForm, recipients: string[]): Readable {
  const stages = encodeStages(form, recipients, { threaded: false });
  const source = Readable.from(parts);
  if (!stages.length) return source;
  const last = stages[stages.length - 1]!;
  pipeline([source, ...stages] as unknown as [Readable, Writable], () => undefined);
  return last;
}

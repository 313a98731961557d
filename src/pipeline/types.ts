/** How the archive's bytes are compressed before they are stored. */
export type Compression = 'zstd' | 'gzip' | 'none';

export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];

/** What was done to an archive's bytes to make the stored bytes, outermost last: compress, then encrypt. */
export interface StoredForm {
  compression: Compression;
  /** age-encrypted (to one or more X25519 recipients). */
  encrypted: boolean;
}

/**
 * What the first bytes of stored data show. Inside age the compression is
 * only known after decryption, so it is undefined there.
 */
export type DetectedForm = { compression: Compression; encrypted: false } | { compression: undefined; encrypted: true };

// int64s travel as decimal strings (as etcd3 gives them) and as two big-endian
// u32 halves (in etcd's replies and in the archive). These are on per-record
// paths, so a value that fits a double skips BigInt.

/** A high half below 2^21 makes a value below 2^53: exact as a double. */
const SAFE_HIGH = 2 ** 21;
const LOW_RANGE = 2 ** 32;
/** Fifteen digits are always below 2^53. */
const SMALL = /^\d{1,15}$/;

/** The decimal of the 64-bit value whose halves are hi and lo (each 0..2^32-1). */
export function int64Decimal(hi: number, lo: number, unsigned = false): string {
  if (hi < SAFE_HIGH) return String(hi * LOW_RANGE + lo);
  const n = (BigInt(hi) << 32n) | BigInt(lo);
  return (unsigned ? n : BigInt.asIntN(64, n)).toString();
}

export function readInt64(buf: Buffer, at: number): string {
  return int64Decimal(buf.readUInt32BE(at), buf.readUInt32BE(at + 4));
}

/** The decimal as a number when it is non-negative and exact as a double; undefined otherwise. */
export function smallDecimal(decimal: string): number | undefined {
  return SMALL.test(decimal) ? Number(decimal) : undefined;
}

export function writeInt64(buf: Buffer, decimal: string, at: number): void {
  const n = smallDecimal(decimal);
  if (n === undefined) {
    buf.writeBigInt64BE(BigInt(decimal), at);
    return;
  }
  buf.writeUInt32BE(Math.floor(n / LOW_RANGE), at);
  buf.writeUInt32BE(n % LOW_RANGE, at + 4);
}

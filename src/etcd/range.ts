import type { Connection } from './connect';
import { decodeRangeReply, encodeRangeRequest, type RangeReply, type RangeRequest } from './range-codec';
import { kvUnary } from './unary';

/** One Range whose reply stays bytes (see range-codec.ts). */
export async function range(conn: Connection, req: RangeRequest): Promise<RangeReply> {
  const payload = Buffer.from(encodeRangeRequest(req));
  // Counting the same span needs the same permission as reading it.
  const renew = () => conn.client.kv.range({ key: req.key, range_end: req.rangeEnd, count_only: true });
  return decodeRangeReply(await kvUnary(conn, 'Range', payload, renew));
}

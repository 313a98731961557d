import { configure, Reader, util, Writer, type Long } from 'protobufjs/minimal';
import LongImpl from 'long';
import { int64Decimal } from './int64';

// Without Long, protobufjs returns int64s as doubles, which would corrupt
// lease ids above 2^53. protobufjs normally finds its own `long`; make sure.
if (!util.Long) {
  util.Long = LongImpl as unknown as typeof util.Long;
  configure();
}

export { Reader, Writer };

/** An int64 protobufjs read, as a decimal string. */
export const longDecimal = (v: Long, unsigned: boolean): string => int64Decimal(v.high >>> 0, v.low >>> 0, unsigned);

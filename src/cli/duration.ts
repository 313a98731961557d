import { UsageError } from '../errors';

/** "500ms", "5s", "2m" or plain seconds, as milliseconds; between 100 ms and an hour. */
export function durationFlag(name: string) {
  return (value: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
    const ms = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000) : NaN;
    if (!(ms >= 100 && ms <= 3_600_000)) throw new UsageError(`--${name} ${JSON.stringify(value)} is not a duration between 100ms and 1h`, 'give e.g. 500ms, 5s or 2m');
    return Math.round(ms);
  };
}

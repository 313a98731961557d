export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function secondsSince(start: bigint): string {
  return `${(Number(process.hrtime.bigint() - start) / 1e9).toFixed(2)} s`;
}

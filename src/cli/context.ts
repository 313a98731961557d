import type { Command } from 'commander';
import { resolveConfig, type Config } from '../config/config';
import { UsageError } from '../errors';
import { rawFields } from './field-flags';

/** What every command gets: where to talk to the operator, and the stop signal. */
export interface RunContext {
  signal: AbortSignal;
  /** A line for the operator, on stderr (stdout is for archives and reports). */
  say(line: string): void;
}

export function stderrContext(signal: AbortSignal): RunContext {
  return { signal, say: (line) => process.stderr.write(`${line}\n`) };
}

/** Library warnings, as the operator reads them. */
export function warnings(ctx: RunContext): (message: string) => void {
  return (message) => ctx.say(`warning: ${message}`);
}

/** Resolves this command's fields into a checked Config, warning about unknown keys. */
export function configFrom(cmd: Command, ctx: RunContext): Config {
  const { config, unknown } = resolveConfig(rawFields(cmd));
  warnUnknown(unknown, ctx);
  return config;
}

export function warnUnknown(unknown: string[], ctx: RunContext): void {
  if (unknown.length) ctx.say(`warning: ignoring unknown field(s): ${unknown.join(', ')}`);
}

export function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a whole number above zero, not "${value}"`);
    return n;
  };
}

import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { FIELDS } from '../config/fields';
import { FileError, UsageError } from '../errors';
import { endpointOption, parseEndpointJson } from '../shield/endpoint-json';

function attr(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Adds -e/--endpoint and one flag (plus hidden aliases) per schema field. */
export function addFieldOptions(cmd: Command): Command {
  cmd.addOption(endpointOption());
  for (const f of FIELDS) {
    const [main, ...aliases] = f.cli.flags;
    const value = f.cli.value ? ` <${f.cli.value}>` : '';
    const help = (f.cli.help ?? f.help).replace(/\.$/, '');
    // commander turns any set variable into true for a switch, even "false";
    // rawFields reads a switch's variable itself, as text.
    const opt = new Option(`--${main}${value}`, f.cli.env && !value ? `${help} (env: ${f.cli.env})` : help);
    if (f.cli.env && value) opt.env(f.cli.env);
    cmd.addOption(opt);
    for (const alias of aliases) cmd.addOption(new Option(`--${alias}${value}`).hideHelp());
  }
  return cmd;
}

function readPem(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FileError(`cannot read --${flag} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'give the path of a readable PEM file');
  }
}

/**
 * The raw field values of this run: the -e JSON as SHIELD sends it, or else
 * flags and etcdctl environment variables, with file paths read and
 * --user name:password split as etcdctl does.
 */
export function rawFields(cmd: Command): Record<string, unknown> {
  const opts = cmd.opts<Record<string, unknown>>();
  const fromCli = (f: (typeof FIELDS)[number]) =>
    f.cli.flags.map(attr).find((a) => opts[a] !== undefined && cmd.getOptionValueSource(a) === 'cli');

  if (typeof opts.endpoint === 'string') {
    const clash = FIELDS.find(fromCli);
    if (clash) {
      throw new UsageError(
        `--${clash.cli.flags[0]} cannot be combined with -e/--endpoint`,
        'give every field inside the -e JSON, or drop -e and use flags',
      );
    }
    return parseEndpointJson(opts.endpoint);
  }

  const raw: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const names = f.cli.flags.map(attr);
    // Any spelling typed on the command line wins over the variable bound to the main one.
    const a = names.find((n) => opts[n] !== undefined && cmd.getOptionValueSource(n) === 'cli') ?? names.find((n) => opts[n] !== undefined);
    let v = a === undefined ? undefined : opts[a];
    if (v === undefined && !f.cli.value && f.cli.env) v = process.env[f.cli.env];
    if (v === undefined) continue;
    raw[f.name] = f.cli.file && typeof v === 'string' ? readPem(v, f.cli.flags[0]!) : v;
  }
  // etcdctl accepts --user name:password; a separate --password wins.
  if (typeof raw.username === 'string' && raw.username.includes(':') && raw.password === undefined) {
    const at = raw.username.indexOf(':');
    raw.password = raw.username.slice(at + 1);
    raw.username = raw.username.slice(0, at);
  }
  if (raw.auth === undefined) {
    const user = raw.username !== undefined;
    const cert = raw.client_cert !== undefined || raw.client_key !== undefined;
    if (user || cert) raw.auth = user && cert ? 'both' : user ? 'rbac' : 'cert';
  }
  return raw;
}

import { ConfigError } from '../errors';

/** One thing wrong in a service configuration file. Never holds a secret. */
export interface ConfigProblem {
  /** `job "main"`, or `job 2` when the job has no usable name; absent for top-level settings. */
  job?: string;
  /** The key as written in the file, e.g. `schedule`, `etcd.password_env`, `encrypt_to[1]`. */
  field: string;
  message: string;
  /** 1-based line in the file, when the YAML parser knows it. */
  line?: number;
}

/** `FILE:LINE: job "main": field: message`, the shape compilers use, so editors can jump to it. */
export function formatProblem(source: string, p: ConfigProblem): string {
  return `${source}${p.line === undefined ? '' : `:${p.line}`}: ${p.job === undefined ? '' : `${p.job}: `}${p.field === '' ? '' : `${p.field}: `}${p.message}`;
}

/** Every problem found in a service configuration, not just the first. */
export class ServiceConfigError extends ConfigError {
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(
      `${source}: ${problems.length} error${problems.length === 1 ? '' : 's'} in the service configuration:\n${problems.map((p) => `  ${formatProblem(source, p)}`).join('\n')}`,
      'fix each line listed; `etcd-shield serve --check --config FILE` checks the file again',
    );
  }

  /** One line per problem. */
  lines(): string[] {
    return this.problems.map((p) => formatProblem(this.source, p));
  }
}

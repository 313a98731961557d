import { shieldBool } from '../config/shield-bool';

/** --debug / -D anywhere on the command line, or SHIELD's DEBUG variable: stacks in errors, debug lines in serve's log. */
export function isDebug(): boolean {
  return process.argv.includes('-D') || process.argv.includes('--debug') || shieldBool(process.env.DEBUG ?? '') === true;
}

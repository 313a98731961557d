// SHIELD's framework reads booleans this way; anything else is the wrong type.
const TRUE_RE = /^(1|y|yes|t|true|on)$/i;
const FALSE_RE = /^(0|n|no|f|false|off|)$/i;

/** A boolean as SHIELD spells it (true, yes, on, 1...; false, no, off, 0, empty), or undefined when it is none. */
export function shieldBool(text: string): boolean | undefined {
  return TRUE_RE.test(text) ? true : FALSE_RE.test(text) ? false : undefined;
}

import { Option } from 'commander';
import { BadEndpointJsonError } from '../errors';

/** The -e JSON is small; anything this large is a mistake, not a configuration. */
const MAX_ENDPOINT_JSON = 1024 * 1024;

/** SHIELD passes a plugin its whole configuration as one JSON object (-e); exit 10 when it is not one. */
export function parseEndpointJson(text: string): Record<string, unknown> {
  if (Buffer.byteLength(text) > MAX_ENDPOINT_JSON) {
    throw new BadEndpointJsonError(`the --endpoint JSON is ${Buffer.byteLength(text)} bytes; a configuration is far smaller`, 'pass only the plugin fields');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BadEndpointJsonError(`the --endpoint value is not valid JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadEndpointJsonError('the --endpoint JSON must be an object of fields');
  }
  return value as Record<string, unknown>;
}

/** -e/--endpoint, on every command that takes the fields. */
export function endpointOption(): Option {
  return new Option('-e, --endpoint <json>', 'the whole configuration as one JSON object (how SHIELD calls a plugin); field flags are then not allowed');
}

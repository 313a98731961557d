import { FIELDS } from '../config/fields';
import { TOOL_AUTHOR, TOOL_NAME, TOOL_VERSION } from '../version';

/** SHIELD's plugin metadata, built from the field schema. Empty optional keys are left out. */
export function pluginInfo(): Record<string, unknown> {
  return {
    name: TOOL_NAME,
    author: TOOL_AUTHOR,
    version: TOOL_VERSION,
    features: { target: 'yes', store: 'no' },
    fields: FIELDS.map((f) => ({
      mode: 'target',
      name: f.name,
      type: f.type,
      title: f.title,
      help: f.help,
      ...(f.example !== undefined && { example: f.example }),
      ...(f.default !== undefined && { default: f.default }),
      ...(f.required && { required: true }),
      ...(f.enum && { enum: [...f.enum] }),
    })),
  };
}

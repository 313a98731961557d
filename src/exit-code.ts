/** SHIELD's exit codes (its plugin contract), and ours within them. */
export const ExitCode = {
  ok: 0,
  usage: 1,
  unsupportedAction: 2,
  externalCommand: 3,
  failure: 4,
  badEndpointJson: 10,
  missingKey: 11,
  missingField: 12,
  wrongType: 13,
} as const;

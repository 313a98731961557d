// The gRPC channel settings every connection to etcd shares: etcd3's client
// (connect.ts) and the light client of snapshot mode (member-client.ts).

/**
 * grpc-js refuses replies over 4 MiB by default; one etcd value alone may be
 * larger than that, so the ceiling is high and page size is bounded by us.
 */
const MAX_MESSAGE_BYTES = 512 * 1024 * 1024;
/**
 * HTTP/2 receive window, per call and per connection. At the 64 KiB default,
 * etcd stops every 64 KiB of a page until we acknowledge it, so it waits on
 * our event loop; with room for a few whole pages it never does. Memory stays
 * bounded by the pages requested (docs/performance.md).
 */
const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

export const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
} as const;

/** grpc-js's TLS checks turned off, for insecure_skip_verify. */
export const UNVERIFIED_TLS = { rejectUnauthorized: false, checkServerIdentity: () => undefined } as const;

const warnedInsecure = new WeakSet<(line: string) => void>();

/** Once per receiver of warnings: the connections of one run share the one setting. */
export function warnInsecure(warn: (line: string) => void): void {
  if (warnedInsecure.has(warn)) return;
  warnedInsecure.add(warn);
  warn('insecure_skip_verify is on: the etcd server certificate is not verified, so anyone in the network path can impersonate etcd and read the data; use it in test labs only');
}

/** etcd3 and grpc-js take a host:port, not a URL. */
export const grpcTarget = (endpoint: string): string => endpoint.replace(/^https?:\/\//, '');

import { Etcd3, IOptions } from 'etcd3';
import type { Config } from '../config/config';

// grpc-js refuses replies over 4 MiB by default; one etcd value alone may be
// larger than that, so the ceiling is high and page size is bounded by us.
const MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

export interface Connection {
  client: Etcd3;
  config: Config;
  /** Endpoints as the operator wrote them, for messages. */
  describe: string;
  close(): void;
}

/**
 * Opens a client for the configured cluster. `timeout` becomes a deadline on
 * every single request (connecting included), never on the whole run.
 */
export function connect(config: Config, hosts: string[] = config.endpoints): Connection {
  const options: IOptions = {
    hosts,
    grpcOptions: {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    },
    defaultCallOptions: () => ({ deadline: Date.now() + config.timeoutMs }),
  };
  if (config.secure) {
    options.credentials = {
      // Without a CA, grpc-js falls back to the system roots.
      rootCertificate: config.caCert ? Buffer.from(config.caCert) : (undefined as unknown as Buffer),
      certChain: config.clientCert ? Buffer.from(config.clientCert) : undefined,
      privateKey: config.clientKey ? Buffer.from(config.clientKey) : undefined,
    };
  }
  if (config.username !== undefined && config.password !== undefined) {
    options.auth = { username: config.username, password: config.password };
  }
  const client = new Etcd3(options);
  return {
    client,
    config,
    describe: hosts.join(', '),
    close: () => client.close(),
  };
}

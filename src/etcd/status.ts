import type { IStatusResponse } from 'etcd3';
import type { Config } from '../config/config';
import type { ShieldError } from '../errors';
import { connect } from './connect';
import { explainEtcdError } from './explain';

export type EndpointStatus = { endpoint: string; status: IStatusResponse; error?: undefined } | { endpoint: string; status?: undefined; error: ShieldError };

/**
 * Each endpoint's Status, asked of that member alone, all at once, without
 * retries. Status needs no user, so only the TLS identity is sent.
 */
export async function endpointStatuses(config: Config, warn?: (message: string) => void): Promise<EndpointStatus[]> {
  const anonymous: Config = { ...config, username: undefined, password: undefined };
  return Promise.all(
    config.endpoints.map(async (endpoint): Promise<EndpointStatus> => {
      const one = connect(anonymous, [endpoint], { retry: false, warn });
      try {
        return { endpoint, status: await one.client.maintenance.status() };
      } catch (err) {
        return { endpoint, error: explainEtcdError(err, { config: { ...anonymous, endpoints: [endpoint] }, action: 'connect', object: '' }) };
      } finally {
        one.close();
      }
    }),
  );
}

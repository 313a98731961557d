import type { Config } from '../config/config';
import { connect, Connection } from './connect';
import { explainEtcdError } from './explain';
import { prefixRange } from './pages';
import { humanBytes } from '../util/format';

export interface ProbeLine {
  name: string;
  status: 'ok' | 'fail' | 'warn';
  message: string;
}

/**
 * The connection half of validate: each endpoint's health and version, the
 * members and leader, whether the credentials work, and whether the user may
 * read (and write) the prefix. Nothing is written.
 */
export async function probeCluster(config: Config): Promise<ProbeLine[]> {
  const lines: ProbeLine[] = [];
  const scope = config.prefix ? `prefix ${JSON.stringify(config.prefix)}` : 'the whole keyspace';
  const who = config.username !== undefined ? `user "${config.username}"` : 'the client';

  let leader = '';
  for (const endpoint of config.endpoints) {
    const one = connect(config, [endpoint]);
    try {
      const s = await one.client.maintenance.status();
      leader ||= s.leader;
      lines.push({
        name: 'endpoint',
        status: 'ok',
        message: `${endpoint}: etcd ${s.version}, member ${BigInt(s.header.member_id).toString(16)}${s.leader === s.header.member_id ? ' (leader)' : ''}, database ${humanBytes(Number(s.dbSize))}`,
      });
    } catch (err) {
      const e = explainEtcdError(err, { config: { ...config, endpoints: [endpoint] }, action: 'connect' });
      lines.push({ name: 'endpoint', status: 'fail', message: `${endpoint}: ${e.message}` });
    } finally {
      one.close();
    }
  }
  if (!lines.some((l) => l.status === 'ok')) return lines;

  const conn: Connection = connect(config);
  try {
    try {
      const { members } = await conn.client.cluster.memberList({});
      const names = members.map((m) => {
        const id = BigInt(m.ID).toString(16);
        return `${m.name || id}${m.ID === leader ? ' (leader)' : ''} ${m.clientURLs.join(' ')}`;
      });
      lines.push({ name: 'members', status: 'ok', message: `${members.length}: ${names.join('; ')}` });
    } catch (err) {
      lines.push({ name: 'members', status: 'fail', message: explainEtcdError(err, { config, action: 'list the members of' }).message });
    }

    const range = prefixRange(config.prefix);
    try {
      const r = await conn.client.kv.range({ ...range, count_only: true });
      lines.push({ name: 'read', status: 'ok', message: `${who} may read ${scope}: ${r.count} keys at revision ${r.header.revision}` });
    } catch (err) {
      lines.push({ name: 'read', status: 'fail', message: explainEtcdError(err, { config, action: 'read', prefix: config.prefix }).message });
      return lines;
    }

    // etcd checks permissions on every operation of a transaction, run or
    // not; this compare never holds, so the delete is checked but never done.
    try {
      await conn.client.kv.txn({
        compare: [{ key: range.key, target: 'Version', result: 'Less', version: 0 }],
        success: [{ request_delete_range: range }],
        failure: [],
      });
      lines.push({ name: 'write', status: 'ok', message: `${who} may write and delete in ${scope} (restore allowed)` });
    } catch (err) {
      const e = explainEtcdError(err, { config, action: 'write', prefix: config.prefix });
      lines.push({ name: 'write', status: 'warn', message: `${e.message}; backups work, restores to this target will be refused` });
    }
  } finally {
    conn.close();
  }
  return lines;
}

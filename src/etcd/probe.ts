import type { IMember, IStatusResponse } from 'etcd3';
import type { Config } from '../config/config';
import { connect, Connection } from './connect';
import { endpointStatuses } from './status';
import { explainEtcdError } from './explain';
import { prefixRange } from './pages';
import { humanBytes } from '../util/format';
import { X509Certificate } from 'node:crypto';
import { subject } from '../config/pem';

export interface ProbeLine {
  name: string;
  status: 'ok' | 'fail' | 'warn';
  message: string;
}

const hex = (id: string) => BigInt(id).toString(16);

/**
 * The connection half of validate: each endpoint's health and version, the
 * leader and the members, whether the credentials work, and whether the user
 * may read (and write) the prefix. Nothing is written.
 */
export async function probeCluster(config: Config, warn?: (message: string) => void): Promise<ProbeLine[]> {
  const lines: ProbeLine[] = [];
  const scope = config.prefix ? `prefix ${JSON.stringify(config.prefix)}` : 'the whole keyspace';
  const who = config.username !== undefined ? `user "${config.username}"` : 'the client';

  // Status and the member list need no user: the TLS identity alone.
  const anonymous: Config = { ...config, username: undefined, password: undefined };
  const statuses = await endpointStatuses(config, warn);
  const up = statuses.filter((s): s is { endpoint: string; status: IStatusResponse } => s.status !== undefined);

  let members: IMember[] = [];
  if (up.length > 0) {
    const any = connect(anonymous, up.map((s) => s.endpoint), { attempts: 3, warn });
    try {
      members = (await any.client.cluster.memberList({})).members;
    } catch {
      /* reported below as a missing member list */
    } finally {
      any.close();
    }
  }
  const nameOf = (id: string) => {
    const m = members.find((x) => x.ID === id);
    return m?.name ? `${m.name} (${hex(id)})` : hex(id);
  };

  for (const s of statuses) {
    if (s.status) {
      const st = s.status;
      const role = st.leader === st.header.member_id ? 'leader' : st.leader === '0' ? 'no leader' : 'follower';
      lines.push({
        name: 'endpoint',
        status: 'ok',
        message: `${s.endpoint}: healthy, etcd ${st.version}, member ${nameOf(st.header.member_id)}, ${role}, raft term ${st.raftTerm}, database ${humanBytes(Number(st.dbSize))}`,
      });
    } else {
      // A member down is survivable when others answer; a TLS or credential problem is not.
      const survivable = s.error!.kind === 'connection' && up.length > 0;
      lines.push({
        name: 'endpoint',
        status: survivable ? 'warn' : 'fail',
        message: `${s.endpoint}: ${s.error!.message}${survivable ? '; backup and restore use the other members' : ''}`,
      });
    }
  }
  if (up.length === 0) return lines;

  const clusters = new Set(up.map((s) => s.status.header.cluster_id));
  if (clusters.size > 1) {
    lines.push({
      name: 'cluster',
      status: 'fail',
      message: `the endpoints belong to ${clusters.size} different clusters (${up.map((s) => `${s.endpoint}: ${hex(s.status.header.cluster_id)}`).join(', ')}); list the members of one cluster`,
    });
    return lines;
  }

  const leaders = new Set(up.map((s) => s.status.leader).filter((l) => l !== '0'));
  const leader = [...leaders][0];
  if (!leader) {
    lines.push({ name: 'leader', status: 'fail', message: 'none: no member knows a leader, so the cluster has lost its quorum and cannot serve reads or writes' });
  } else {
    const where = members.find((m) => m.ID === leader)?.clientURLs.join(' ');
    lines.push({
      name: 'leader',
      status: leaders.size > 1 ? 'warn' : 'ok',
      message: `${nameOf(leader)}${where ? ` at ${where}` : ''}${leaders.size > 1 ? ` (members disagree: ${[...leaders].map(nameOf).join(', ')}; an election is under way)` : ''}`,
    });
  }

  if (members.length === 0) {
    lines.push({ name: 'members', status: 'fail', message: 'the member list could not be read' });
  } else {
    const listed = new Set(config.endpoints);
    const names = members.map((m) => {
      const tags = [m.ID === leader ? 'leader' : '', m.isLearner ? 'learner' : '', m.clientURLs.some((u) => listed.has(u)) ? '' : 'not in url'].filter(Boolean);
      return `${m.name || '(unstarted)'} ${hex(m.ID)} ${m.clientURLs.join(' ') || '-'}${tags.length ? ` (${tags.join(', ')})` : ''}`;
    });
    lines.push({ name: 'members', status: 'ok', message: `${members.length}: ${names.join('; ')}` });
  }

  // Fewer tries than a backup: validate must answer fast, even when the cluster cannot.
  const conn: Connection = connect(config, config.endpoints, { attempts: 3, warn });
  try {
    // The first call with the credentials logs in: a wrong password fails here.
    try {
      await conn.client.cluster.memberList({});
      lines.push({ name: 'identity', status: 'ok', message: describeIdentity(config) });
    } catch (err) {
      lines.push({ name: 'identity', status: 'fail', message: explainEtcdError(err, { config, action: 'log in', object: '' }).message });
      return lines;
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

function describeIdentity(config: Config): string {
  const parts: string[] = [];
  if (config.username !== undefined) parts.push(`user "${config.username}" logged in`);
  if (config.clientCert) {
    let name = 'client certificate';
    try {
      name = `client certificate ${subject(new X509Certificate(config.clientCert))}`;
    } catch {
      /* validated earlier; the name is only decoration */
    }
    parts.push(`${name} accepted`);
  }
  if (config.secure) parts.push(config.insecureSkipVerify ? 'server certificate NOT verified (insecure_skip_verify)' : 'server certificate verified');
  return parts.length ? parts.join(', ') : 'none (no user, no client certificate)';
}

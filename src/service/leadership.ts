/**
 * Several instances, one leader: etcd3's Election (a key per candidate under
 * one prefix, each on its own lease; the oldest key leads). The library only
 * notices a lost lease after twice its TTL, while the others take over after
 * one TTL, so this role watches its own keep-alives and steps down early.
 */
import { Lease, type Campaign, type Election, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { connect } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { ConfigError } from '../errors';
import type { HaConfig, ServiceJob } from './config';
import { instanceId, type Role } from './role';
import type { RoleView } from './types';

/** The keep-alive age (as a share of the TTL) at which a leader gives up: before etcd can expire its lease. */
const STEP_DOWN_AT = 2 / 3;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

export interface ElectedRoleOptions {
  /** The etcd connection of the election; closed by stop(). */
  connection: { client: Etcd3; close(): void };
  /** The election key, as configured (etcd3 keeps the candidates under `election/KEY/`). */
  election: string;
  /** Lease TTL in seconds. */
  ttl: number;
  logger: Logger;
  /** Default `hostname:pid`. */
  instance?: string;
  /** Turns an etcd client error into one that says what to do (the role logs message and hint). */
  explain?: (err: Error) => { kind: string; message: string; hint: string };
}

/** Our own reasons to doubt the leadership: they need no explaining. */
class LeadershipDoubt extends Error {}

export class ElectedRole implements Role {
  readonly instance: string;
  private readonly client: Etcd3;
  private readonly electionOf: Election;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private onChange: (leader: boolean) => void = () => undefined;
  private leading = false;
  private leaderInstance: string | undefined;
  /** Bumped whenever a campaign is abandoned, so a late event of an old campaign changes nothing. */
  private generation = 0;
  private campaign: Campaign | undefined;
  private stopped = false;
  private failures = 0;
  /** When (monotonicMs) the newest answered keep-alive was sent: etcd's lease lives at least a TTL from then. */
  private aliveSince = -Infinity;
  private watchdog: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private leaderPoll: NodeJS.Timeout | undefined;
  private reading = false;

  constructor(private readonly opts: ElectedRoleOptions) {
    this.instance = opts.instance ?? instanceId();
    this.client = opts.connection.client;
    this.electionOf = this.client.election(opts.election, opts.ttl);
    this.ttlMs = opts.ttl * 1000;
    this.log = opts.logger.child({ election: opts.election, instance: this.instance });
  }

  view(): RoleView {
    return { leader: this.isLeader(), ha: true, instance: this.instance, election: this.opts.election, leaderInstance: this.leaderInstance };
  }

  /**
   * Also false once the lease is in doubt, before the watchdog has said so:
   * after a freeze (SIGSTOP, a VM pause) a due tick may run before it does.
   */
  isLeader(): boolean {
    return this.leading && this.leaseFresh();
  }

  private leaseFresh(): boolean {
    return monotonicMs() - this.aliveSince <= this.ttlMs * STEP_DOWN_AT;
  }

  async start(onChange: (leader: boolean) => void): Promise<void> {
    this.onChange = onChange;
    this.log.info({ event: 'campaign', ttl: this.opts.ttl }, 'campaigning for leadership; a follower runs no schedules');
    this.campaignNow();
    this.readLeader();
    this.leaderPoll = setInterval(() => this.readLeader(), this.ttlMs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.generation++;
    clearInterval(this.watchdog);
    clearTimeout(this.retry);
    clearInterval(this.leaderPoll);
    const wasLeader = this.leading;
    this.leading = false;
    const campaign = this.campaign;
    this.campaign = undefined;
    // Resigning deletes our key at once, so another instance leads without waiting out the TTL.
    // If etcd cannot be reached, the lease expires on its own; waiting longer than that is pointless.
    const resigned = campaign ? await within(campaign.resign(), this.ttlMs).then(() => true, () => false) : true;
    this.opts.connection.close();
    if (wasLeader) {
      this.log.info({ event: 'resigned', handedOver: resigned }, resigned ? 'resigned: another instance can lead now' : 'could not resign (etcd unreachable); another instance leads once the lease expires');
    }
  }

  private campaignNow(): void {
    if (this.stopped) return;
    const generation = ++this.generation;
    const campaign = this.electionOf.campaign(this.instance);
    this.campaign = campaign;
    const lease = leaseOf(campaign);
    let sentAt: number | undefined;
    lease.on('keepaliveFired', () => (sentAt ??= monotonicMs()));
    lease.on('keepaliveSucceeded', () => {
      if (sentAt !== undefined) this.aliveSince = Math.max(this.aliveSince, sentAt);
      sentAt = undefined;
    });
    campaign.on('error', (err: Error) => this.lost(generation, err));
    campaign.on('elected', () => void this.confirm(generation, campaign, lease));
  }

  /**
   * etcd3 says "elected" when the candidates before us are gone, even if our
   * own key expired meanwhile (a partition); so we renew our lease once and
   * check that our key is the oldest before leading.
   */
  private async confirm(generation: number, campaign: Campaign, lease: Lease): Promise<void> {
    try {
      const sent = monotonicMs();
      // Past this, the lease might expire before we could act on the answer.
      await within(this.checkOldest(campaign, lease), this.ttlMs * (1 - STEP_DOWN_AT), 'confirming the election');
      if (generation !== this.generation) return;
      this.aliveSince = Math.max(this.aliveSince, sent);
      this.failures = 0;
      this.leading = true;
      this.leaderInstance = this.instance;
      this.log.info({ event: 'leader' }, 'this instance is the leader: it runs the schedules');
      this.watchdog = setInterval(() => this.checkLease(generation), Math.max(100, this.ttlMs / 10));
      this.onChange(true);
    } catch (err) {
      this.lost(generation, err as Error);
    }
  }

  private async checkOldest(campaign: Campaign, lease: Lease): Promise<void> {
    await lease.keepaliveOnce();
    const ours = await campaign.getCampaignKey();
    const oldest = await this.client.getAll().prefix(ours.slice(0, ours.lastIndexOf('/') + 1)).sort('Create', 'Ascend').limit(1).keys();
    if (oldest[0] !== ours) throw new LeadershipDoubt(`another candidate's key (${oldest[0] ?? 'none'}) is older than ours`);
  }

  private checkLease(generation: number): void {
    if (!this.leaseFresh()) this.lost(generation, new LeadershipDoubt(`no lease keep-alive answered for ${((monotonicMs() - this.aliveSince) / 1000).toFixed(1)} s`));
  }

  /** The campaign failed or the lease is in doubt: stop leading now, drop the campaign, try again later. */
  private lost(generation: number, err: Error): void {
    if (generation !== this.generation || this.stopped) return;
    this.generation++;
    clearInterval(this.watchdog);
    const campaign = this.campaign;
    this.campaign = undefined;
    if (campaign) {
      // An abandoned campaign may still report errors; they are expected now.
      campaign.removeAllListeners('elected');
      campaign.resign().catch(() => undefined);
    }
    const delay = backoff(this.failures++);
    const explained = err instanceof LeadershipDoubt || !this.opts.explain ? undefined : this.opts.explain(err);
    const reason = explained?.message ?? err.message.split('\n')[0];
    const hint = explained?.hint;
    if (this.leading) {
      this.leading = false;
      this.leaderInstance = undefined;
      this.readLeader();
      this.log.warn({ event: 'follower', reason, hint, retryInSeconds: delay / 1000 }, 'stepped down: leadership is in doubt (etcd unreachable or the lease lost); this instance runs no schedules now');
      this.onChange(false);
    } else {
      this.log.warn({ event: 'election-error', reason, hint, retryInSeconds: delay / 1000 }, 'the campaign failed; trying again');
    }
    this.retry = setTimeout(() => this.campaignNow(), delay);
  }

  /**
   * Asks etcd who leads, for the view. Not etcd3's ElectionObserver: when two
   * candidates' keys arrive in one watch event it reports the newer one.
   */
  private readLeader(): void {
    if (this.stopped || this.reading) return;
    this.reading = true;
    within(this.electionOf.leader(), this.ttlMs, 'asking etcd who leads')
      .then(
        (leader) => leader,
        () => undefined,
      )
      .then((leader) => {
        this.reading = false;
        if (this.stopped || leader === this.leaderInstance) return;
        this.leaderInstance = leader;
        this.log.info({ event: 'election-leader', leader: leader ?? null }, leader ? `the leader is ${leader}` : 'no instance leads, or etcd cannot say');
      });
  }
}

/** Lease ages are measured on a clock that a wall-clock step (NTP, an operator) cannot move. */
function monotonicMs(): number {
  return performance.now();
}

/** etcd3 keeps a campaign's lease private; its keep-alive events are what tells us it still holds. */
function leaseOf(campaign: Campaign): Lease {
  const lease = (campaign as unknown as { lease?: unknown }).lease;
  if (!(lease instanceof Lease)) throw new Error('this version of the etcd3 client library hides the election lease; ha cannot run safely with it');
  return lease;
}

/** Doubling from 0.5 s to 10 s, with jitter so that instances do not retry in step. */
function backoff(failures: number): number {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(failures, 10));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

function within<T>(p: Promise<T>, ms: number, what = 'the request'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LeadershipDoubt(`${what} got no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The role for a config with `ha`: it campaigns through the etcd connection of job `ha.job`. */
export function electedRole(ha: HaConfig, jobs: readonly ServiceJob[], logger: Logger): ElectedRole {
  const job = jobs.find((j) => j.name === ha.job);
  if (!job) throw new ConfigError(`ha.job "${ha.job}" is not a job of the config`, 'name one of the jobs in ha.job, or leave it out for the first job');
  const connection = connect(job.etcd, job.etcd.endpoints, { warn: (line) => logger.warn({ event: 'etcd', job: job.name }, line) });
  const explain = (err: Error) => explainEtcdError(err, { config: job.etcd, action: 'write', prefix: `election/${ha.election}/` });
  return new ElectedRole({ connection, election: ha.election, ttl: ha.ttl, logger, explain });
}

// One ElectedRole alone in its own process, so a test can SIGKILL or SIGSTOP it.
// Usage: node ha-candidate.js ETCD_URL ELECTION TTL NAME; logs (pino JSON) on stdout.
import pino from 'pino';
import { resolveConfig } from '../src/config/config';
import { connect } from '../src/etcd/connect';
import { ElectedRole } from '../src/service/leadership';

const [url, election, ttl, name] = process.argv.slice(2);
// `node --test dist/test/` runs every file here; alone, without arguments, this one has nothing to do.
if (url === undefined) process.exit(0);
const logger = pino(pino.destination({ fd: 1, sync: true }));
const role = new ElectedRole({ connection: connect(resolveConfig({ url: url!, timeout: '2' }).config), election: election!, ttl: Number(ttl), logger, instance: name });
void role.start((leader) => logger.info({ event: 'change', leader }));
process.once('SIGTERM', () => void role.stop().then(() => process.exit(0)));

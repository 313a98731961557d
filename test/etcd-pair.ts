// A source and a target etcd, a client on each and a temp dir: what a test
// that backs up, follows and restores needs. close() stops and removes all.
import { Etcd3 } from 'etcd3';
import { type EtcdCluster, makeTestDir, removeTestDir, startEtcd } from './harness';

export interface EtcdPair {
  source: EtcdCluster;
  target: EtcdCluster;
  src: Etcd3;
  dst: Etcd3;
  dir: string;
  close(): Promise<void>;
}

export async function startEtcdPair(): Promise<EtcdPair> {
  const dir = makeTestDir();
  const [source, target] = await Promise.all([startEtcd(), startEtcd()]);
  const src = new Etcd3({ hosts: source.url });
  const dst = new Etcd3({ hosts: target.url });
  return {
    source,
    target,
    src,
    dst,
    dir,
    close: async () => {
      src.close();
      dst.close();
      await Promise.all([source.stop(), target.stop()]);
      await removeTestDir(dir);
    },
  };
}

// Test PKI generated with the real openssl CLI at test time (never checked in).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

export const OPENSSL = '/usr/bin/openssl';
export const CLIENT_CN = 'etcd-shield-test-client';

export interface CertSet {
  dir: string;
  keyType: 'rsa' | 'ec';
  caCert: string;
  caCertPem: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientCertPem: string;
  clientKey: string;
  clientKeyPem: string;
  /** A CA unrelated to the one that signed the server/client certs. */
  otherCaCert: string;
  otherCaCertPem: string;
}

export interface MakeCertsOptions {
  keyType?: 'rsa' | 'ec';
  /** Encode server/client keys as PKCS#8 ("PRIVATE KEY") instead of PKCS#1/SEC1. */
  pkcs8?: boolean;
  /** Client cert validity is 2020-01-01..2020-01-02, i.e. already expired. */
  expired?: boolean;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // A stray OPENSSL_CONF would change defaults; every call passes its own -config.
    const env = { ...process.env };
    delete env.OPENSSL_CONF;
    execFile(OPENSSL, args, { cwd, env, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

function opensslConf(keyType: 'rsa' | 'ec'): string {
  // keyEncipherment only makes sense for RSA key transport.
  const leafKu = keyType === 'rsa' ? 'digitalSignature, keyEncipherment' : 'digitalSignature';
  return `
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, ${leafKu}
# clientAuth too: etcd's gRPC gateway dials itself with the server cert.
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, ${leafKu}
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca ]
default_ca = test_ca
[ test_ca ]
database = ca-index.txt
new_certs_dir = ca-newcerts
serial = ca-serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
`;
}

async function genKey(dir: string, name: string, keyType: 'rsa' | 'ec', pkcs8: boolean): Promise<string> {
  const file = `${name}.key`;
  const alg =
    keyType === 'rsa'
      ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']
      : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  // genpkey always writes PKCS#8; convert when the traditional form is wanted.
  await openssl(['genpkey', ...alg, '-out', file], dir);
  if (!pkcs8) {
    // openssl truncates -out before reading -in, so never convert in place.
    await openssl(['pkey', '-in', file, '-traditional', '-out', `${name}.trad.key`], dir);
    await fs.rename(path.join(dir, `${name}.trad.key`), path.join(dir, file));
  }
  await fs.chmod(path.join(dir, file), 0o600);
  return file;
}

const serial = () => '0x' + randomBytes(12).toString('hex').replace(/^[89a-f]/, '1');

async function makeCa(dir: string, name: string, cn: string, keyType: 'rsa' | 'ec'): Promise<{ cert: string; key: string }> {
  const key = await genKey(dir, name, keyType, false);
  const cert = `${name}.crt`;
  await openssl(
    ['req', '-config', 'openssl.cnf', '-x509', '-new', '-key', key, '-sha256', '-days', '3650',
      '-subj', `/CN=${cn}`, '-extensions', 'v3_ca', '-set_serial', serial(), '-out', cert],
    dir,
  );
  return { cert, key };
}

async function makeCsr(dir: string, name: string, cn: string, keyType: 'rsa' | 'ec', pkcs8: boolean): Promise<string> {
  const key = await genKey(dir, name, keyType, pkcs8);
  await openssl(['req', '-config', 'openssl.cnf', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], dir);
  return key;
}

async function signLeaf(dir: string, name: string, ca: { cert: string; key: string }, ext: string): Promise<string> {
  const cert = `${name}.crt`;
  await openssl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(),
      '-days', '3650', '-sha256', '-extfile', 'openssl.cnf', '-extensions', ext, '-out', cert],
    dir,
  );
  return cert;
}

// `x509 -days` cannot go negative and OpenSSL 3.0 lacks -not_before/-not_after,
// so an expired cert goes through `openssl ca` with explicit dates.
async function signExpired(dir: string, name: string, ca: { cert: string; key: string }, ext: string): Promise<string> {
  const cert = `${name}.crt`;
  await fs.writeFile(path.join(dir, 'ca-index.txt'), '');
  await fs.writeFile(path.join(dir, 'ca-serial'), serial().slice(2) + '\n');
  await fs.mkdir(path.join(dir, 'ca-newcerts'), { recursive: true });
  await openssl(
    ['ca', '-batch', '-config', 'openssl.cnf', '-cert', ca.cert, '-keyfile', ca.key, '-in', `${name}.csr`,
      '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', ext,
      '-notext', '-out', cert],
    dir,
  );
  return cert;
}

/** Generates CA, server (SAN IP:127.0.0.1, DNS:localhost), client and an unrelated CA into `dir`. */
export async function makeCerts(dir: string, opts: MakeCertsOptions = {}): Promise<CertSet> {
  const keyType = opts.keyType ?? 'ec';
  const pkcs8 = opts.pkcs8 ?? false;
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.writeFile(path.join(dir, 'openssl.cnf'), opensslConf(keyType));

  // Key generation dominates for RSA; run independent steps concurrently.
  const [ca, other, serverKey, clientKey] = await Promise.all([
    makeCa(dir, 'ca', 'etcd-shield-test-ca', keyType),
    makeCa(dir, 'other-ca', 'etcd-shield-unrelated-ca', keyType),
    makeCsr(dir, 'server', 'localhost', keyType, pkcs8),
    makeCsr(dir, 'client', CLIENT_CN, keyType, pkcs8),
  ]);
  const [serverCert, clientCert] = await Promise.all([
    signLeaf(dir, 'server', ca, 'server_ext'),
    opts.expired ? signExpired(dir, 'client', ca, 'client_ext') : signLeaf(dir, 'client', ca, 'client_ext'),
  ]);

  const abs = (f: string) => path.join(dir, f);
  const read = (f: string) => fs.readFile(abs(f), 'utf8');
  const [caCertPem, clientCertPem, clientKeyPem, otherCaCertPem] = await Promise.all([
    read(ca.cert), read(clientCert), read(clientKey), read(other.cert),
  ]);
  return {
    dir,
    keyType,
    caCert: abs(ca.cert),
    caCertPem,
    serverCert: abs(serverCert),
    serverKey: abs(serverKey),
    clientCert: abs(clientCert),
    clientCertPem,
    clientKey: abs(clientKey),
    clientKeyPem,
    otherCaCert: abs(other.cert),
    otherCaCertPem,
  };
}

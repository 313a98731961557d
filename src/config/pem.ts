import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';

/** What validate may say about PEM material without showing it. */
export interface CertSummary {
  cert: X509Certificate;
  /** One line, no secrets: subject, expiry. */
  describe: string;
}

export function parseCertificate(pem: string, now = new Date()): CertSummary {
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) {
    throw new Error('is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line)');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw new Error(`cannot be parsed as an X.509 certificate (${(err as Error).message})`);
  }
  const notAfter = new Date(cert.validTo);
  const notBefore = new Date(cert.validFrom);
  if (notAfter < now) {
    throw new Error(`expired on ${notAfter.toISOString()} (${subject(cert)}); issue a new certificate`);
  }
  if (notBefore > now) {
    throw new Error(`is not valid before ${notBefore.toISOString()} (${subject(cert)}); check the clock`);
  }
  return { cert, describe: `${subject(cert)}, valid until ${notAfter.toISOString().slice(0, 10)}` };
}

export function parsePrivateKey(pem: string): { key: KeyObject; describe: string } {
  if (!/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw new Error('is not a PEM private key (expected a "-----BEGIN ... PRIVATE KEY-----" line)');
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new Error('is encrypted with a passphrase; decrypt it first (openssl pkey -in key.pem -out plain.pem)');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`cannot be parsed as a private key (${(err as Error).message})`);
  }
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    return { key, describe: `RSA ${key.asymmetricKeyDetails?.modulusLength ?? '?'}-bit private key` };
  }
  if (type === 'ec') {
    return { key, describe: `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'} private key` };
  }
  throw new Error(`is a ${type} key; etcd client certificates need an RSA or EC key`);
}

function subject(cert: X509Certificate): string {
  const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1];
  return cn ? `CN=${cn}` : cert.subject.replace(/\n/g, ', ');
}

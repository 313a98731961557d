import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';

/** What validate may say about PEM material without showing it. */
export interface CertSummary {
  /** The first certificate: the leaf of a chain, or the first CA of a bundle. */
  cert: X509Certificate;
  /** Every certificate in the PEM text, in order. */
  all: X509Certificate[];
  /** One line, no secrets: subject, expiry. */
  describe: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_ANY_USAGE = '2.5.29.37.0';

/** Parses one certificate or a bundle (a chain, or several CAs); every one must be in date. */
export function parseCertificate(pem: string, now = new Date()): CertSummary {
  const blocks = pem.match(CERT_BLOCK);
  if (!blocks) {
    throw new Error('is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" ... "-----END CERTIFICATE-----" block)');
  }
  const all = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      const which = blocks.length > 1 ? `certificate ${i + 1} of ${blocks.length}` : 'it';
      throw new Error(`cannot be parsed: ${which} is not a valid X.509 certificate (${(err as Error).message})`);
    }
  });
  for (const cert of all) {
    const notAfter = new Date(cert.validTo);
    const notBefore = new Date(cert.validFrom);
    if (notAfter < now) {
      throw new Error(`expired on ${notAfter.toISOString()} (${subject(cert)}); issue a new certificate`);
    }
    if (notBefore > now) {
      throw new Error(`is not valid before ${notBefore.toISOString()} (${subject(cert)}); check the clock`);
    }
  }
  const cert = all[0]!;
  const more = all.length > 1 ? ` (+${all.length - 1} more in the bundle)` : '';
  return { cert, all, describe: `${subject(cert)}, valid until ${new Date(cert.validTo).toISOString().slice(0, 10)}${more}` };
}

/** Why etcd would refuse this as a client certificate, or undefined when it may be used. */
export function clientUsageProblem(cert: X509Certificate): string | undefined {
  // keyUsage here is the extended key usage list; absent means any use.
  const eku = cert.keyUsage as string[] | undefined;
  if (eku && !eku.includes(OID_CLIENT_AUTH) && !eku.includes(OID_ANY_USAGE)) {
    return `is not made for client authentication (${subject(cert)} lacks the clientAuth extended key usage), so etcd would refuse it`;
  }
  return undefined;
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
    // Node's message names the failing decoder, never the key material.
    throw new Error(`cannot be parsed as a private key (${(err as Error).message})`);
  }
  const encoding = /-----BEGIN PRIVATE KEY-----/.test(pem) ? 'PKCS#8' : /-----BEGIN RSA/.test(pem) ? 'PKCS#1' : 'SEC1';
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    return { key, describe: `RSA ${key.asymmetricKeyDetails?.modulusLength ?? '?'}-bit private key, ${encoding}` };
  }
  if (type === 'ec') {
    return { key, describe: `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'} private key, ${encoding}` };
  }
  throw new Error(`is a ${type} key; etcd client certificates need an RSA or EC key`);
}

/** etcd uses a client certificate's common name as the user when no password is given. */
export function commonName(cert: X509Certificate): string | undefined {
  return /CN=([^\n,]+)/.exec(cert.subject)?.[1];
}

export function subject(cert: X509Certificate): string {
  const cn = commonName(cert);
  return cn ? `CN=${cn}` : cert.subject.replace(/\n/g, ', ');
}

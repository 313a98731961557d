import { NotFoundError, ShieldError, StoreError } from '../errors';
import { cancelled, messageOf } from './streams';

/** What a failed S3 call was about, for its message. */
export interface S3Call {
  storeUrl: string;
  bucket: string;
  /** The endpoint as shown to the operator (a URL, never credentials). */
  endpoint: string;
  /** "writing KEY to s3://bucket/prefix" */
  doing: string;
  /** Set when a missing object is the caller's NotFoundError. */
  key?: string;
  signal?: AbortSignal;
}

const CREDENTIALS_HINT =
  'check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and its profile), and that they may list, read and write under the prefix';
const REFUSED = new Set([
  'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken',
  'TokenRefreshRequired', 'AllAccessDisabled', 'InvalidSecurity', 'Forbidden',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const UNTRUSTED_CERT = /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)/;
const NO_TLS = /^(EPROTO|ERR_SSL_)/;

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Whether S3 answered (the request reached it and it said no), as opposed to a failure on the way. */
export function answered(err: unknown): boolean {
  return typeof (err as SdkError | undefined)?.$metadata?.httpStatusCode === 'number';
}

/** S3 knew the key and refused this one request (AccessDenied), as a policy that may write but not list does. */
export function deniedOnly(err: unknown): boolean {
  const cause = err instanceof Error ? (err.cause as SdkError | undefined) : undefined;
  return cause?.name === 'AccessDenied';
}

/** Any failure of an AWS SDK call as a typed error naming the store, the object and the endpoint. */
export function s3Error(err: unknown, call: S3Call): ShieldError {
  if (err instanceof ShieldError) return err;
  const { name = 'Error', code = '', $metadata } = (err ?? {}) as SdkError;
  const status = $metadata?.httpStatusCode;
  const said = `${name}: ${messageOf(err)}`;
  const make = (message: string, hint?: string) => new StoreError(message, hint, { cause: err });

  if (name === 'AbortError' && call.signal?.aborted) return cancelled(call.doing);
  if (name === 'CredentialsProviderError') {
    return make(`no AWS credentials found for ${call.storeUrl} (${messageOf(err)})`, CREDENTIALS_HINT);
  }
  if (REFUSED.has(name) || status === 403) {
    return make(`S3 refused the credentials or access while ${call.doing} (${said})`, CREDENTIALS_HINT);
  }
  if (name === 'NoSuchBucket') {
    return make(`bucket ${call.bucket} does not exist at ${call.endpoint}`, 'create the bucket, or fix its name in the store URL');
  }
  if (call.key !== undefined && (name === 'NoSuchKey' || (status === 404 && name === 'NotFound'))) {
    return new NotFoundError(`${call.key} does not exist in ${call.storeUrl}`, undefined, { cause: err });
  }
  if (name === 'PermanentRedirect' || status === 301) {
    return make(`bucket ${call.bucket} is in another region than the one configured (${said})`, 'set AWS_REGION (or region in the AWS profile) to the bucket\'s region');
  }
  if (UNREACHABLE.has(code)) {
    return make(
      `cannot reach the S3 endpoint ${call.endpoint} (${messageOf(err)})`,
      'check the endpoint (its address and port, or AWS_ENDPOINT_URL_S3), that the server runs, and that this host may connect to it',
    );
  }
  if (DROPPED.has(code) || messageOf(err) === 'socket hang up') {
    return make(`lost the connection to the S3 endpoint ${call.endpoint} while ${call.doing} (${messageOf(err)})`, 'check that the server still runs and the network between; then run it again');
  }
  if (name === 'TimeoutError' || code === 'ETIMEDOUT') {
    return make(`the S3 endpoint ${call.endpoint} did not answer in time while ${call.doing} (${messageOf(err)})`, 'check that the server runs and is not overloaded, and the network between');
  }
  if (UNTRUSTED_CERT.test(code)) {
    return make(
      `cannot verify the TLS certificate of the S3 endpoint ${call.endpoint} (${messageOf(err)})`,
      'give the certificate of the CA that signed the server\'s certificate as the store\'s CA file, and check the endpoint\'s host name',
    );
  }
  if (NO_TLS.test(code)) {
    // OpenSSL's text names its source file; its reason is what helps.
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(messageOf(err))?.[1] ?? messageOf(err).trim();
    return make(`the TLS handshake with the S3 endpoint ${call.endpoint} failed (${reason})`, 'check the scheme: http:// for a server without TLS, https:// for one with it');
  }
  if (messageOf(err) === 'Region is missing') {
    return make(`no AWS region is configured for ${call.storeUrl}`, 'set AWS_REGION (or region in the AWS profile) to the bucket\'s region');
  }
  if (status !== undefined) return make(`S3 answered ${name} (HTTP ${status}) while ${call.doing}: ${messageOf(err)}`);
  return make(`S3 request failed while ${call.doing}: ${said}`);
}

/**
 * Every Kafka header name of the record contract (docs/contract.md: Request records to Reply records, Where we differ from Zilla), in one place.
 * The four correlation names are only defaults: routes may rename them
 * (`options.correlation.headers`); the status names are fixed.
 */

export const SERVICE = "zilla:service";
export const METHOD = "zilla:method";
export const REPLY_TO = "zilla:reply-to";
export const CORRELATION_ID = "zilla:correlation-id";
/** Absolute deadline, epoch milliseconds, decimal (docs/contract.md: difference 2; not a Zilla header). */
export const DEADLINE = "zilla:deadline";
/**
 * One caller's attempt of a keyed call (docs/contract.md: difference 9; not a Zilla header): every
 * attempt with the same idempotency key shares the correlation id, so north tags each
 * attempt's records with its own random id, and west tags the answers it gives itself (and a
 * cancel applies) with the attempt they belong to.
 */
export const ATTEMPT = "zilla:attempt";
/** Decimal gRPC status code on the reply's end tombstone. */
export const STATUS = "zilla:status";
/** gRPC status message on the reply's end tombstone, when the upstream gave one. */
export const MESSAGE = "zilla:message";
/** Prefix of every header that carries a gRPC metadata entry. */
export const META_PREFIX = "meta:";

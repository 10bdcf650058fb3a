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
/** Decimal gRPC status code on the reply's end tombstone. */
export const STATUS = "zilla:status";
/** gRPC status message on the reply's end tombstone, when the upstream gave one. */
export const MESSAGE = "zilla:message";
/** Prefix of every header that carries a gRPC metadata entry. */
export const META_PREFIX = "meta:";

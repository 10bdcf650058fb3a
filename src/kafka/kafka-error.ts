/**
 * How kafkajs failures read to the gateway: whether the cluster could not be reached (so a
 * call answers UNAVAILABLE rather than INTERNAL, SPEC §5).
 */

/** kafkajs errors that mean "no broker answered", not "the broker said no". */
const unreachableNames = new Set([
  "KafkaJSConnectionError",
  "KafkaConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSBrokerNotFound",
  "KafkaJSRequestTimeoutError",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSLockTimeout",
]);

/** Whether `error`, or a cause inside kafkajs' retry wrappers, says the cluster is unreachable. */
export function isKafkaUnreachable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 8; depth++) {
    if (unreachableNames.has(current.name)) return true;
    // ECONNREFUSED and friends surface as plain Node errors inside kafkajs wrappers.
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && /^E(CONNREFUSED|CONNRESET|HOSTUNREACH|NOTFOUND)/.test(code)) {
      return true;
    }
    current = current.cause ?? (current as { originalError?: unknown }).originalError;
  }
  return false;
}

/**
 * One floor call, whatever Kafka client carries it: the kafkajs floor and the native floor
 * (the gateway's own Kafka client) share this, so that both floors make exactly the same
 * calls and only the client differs. A call produces its request records (message, end
 * tombstone) keyed by a fresh correlation id and reads the echoes and the status tombstone
 * from the reply topic.
 */
import { createHash, randomUUID } from "node:crypto";
import { echoRequestBytes, echoTextOfSize } from "./echo-payload.ts";
import { bidiMessages, methodOf, type Scenario, serverStreamReplies } from "./scenarios.ts";

export const echoService = "grpc.examples.echo.Echo";
const replyTimeoutMs = 10_000;

/** One reply record as a floor call sees it; `value: null` is the end tombstone. */
export interface FloorReply {
  value: Uint8Array | null;
  status: string | undefined;
}

/** The replies of one call, in arrival order, for the call's code to await one by one. */
export class ReplyQueue {
  private readonly items: FloorReply[] = [];
  private waiter: ((reply: FloorReply) => void) | undefined;
  private failure: Error | undefined;
  private failWaiter: ((error: Error) => void) | undefined;

  push(reply: FloorReply): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter(reply);
    } else this.items.push(reply);
  }

  fail(error: Error): void {
    this.failure = error;
    this.failWaiter?.(error);
  }

  next(): Promise<FloorReply> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<FloorReply>((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }
}

/** What a floor's Kafka client provides to a call. */
export interface FloorTransport {
  /** Routes replies with this correlation id to `queue` until the returned function runs. */
  register(correlationId: string, queue: ReplyQueue): () => void;
  /** Produces one call's request records, in order (`null`: the end tombstone). */
  send(method: string, correlationId: string, values: (Uint8Array | null)[]): Promise<void>;
}

/** Correlation ids as long as the gateway's (uuid + "-" + md5 hex), so records weigh the same. */
export function createCorrelationIds(replyTopic: string): (method: string) => string {
  const suffixes = new Map<string, string>();
  return (method) => {
    let suffix = suffixes.get(method);
    if (suffix === undefined) {
      const input = `zilla:service${echoService}zilla:method${method}zilla:reply-to${replyTopic}`;
      suffix = createHash("md5").update(input).digest("hex");
      suffixes.set(method, suffix);
    }
    return `${randomUUID()}-${suffix}`;
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** One call of the scenario over Kafka; throws unless every echo and the OK status arrive. */
export async function floorCall(
  transport: FloorTransport,
  correlationIdFor: (method: string) => string,
  scenario: Scenario,
  payload: Uint8Array,
): Promise<void> {
  const method = methodOf(scenario.kind);
  const id = correlationIdFor(method);
  const queue = new ReplyQueue();
  const unregister = transport.register(id, queue);
  const timer = setTimeout(() => queue.fail(new Error("reply timeout")), replyTimeoutMs);
  const send = (values: (Uint8Array | null)[]) => {
    transport.send(method, id, values).catch((err: Error) => queue.fail(err));
  };
  const expectEcho = async () => {
    const reply = await queue.next();
    if (reply.value === null) throw new Error(`call ended early, status ${reply.status}`);
    if (!sameBytes(reply.value, payload)) throw new Error("echo differs from request");
  };
  try {
    if (scenario.kind === "bidi") {
      for (let i = 0; i < bidiMessages; i++) {
        send([payload]);
        await expectEcho();
      }
      send([null]);
    } else {
      // Message and end marker leave together, as the gateway's unary and server-stream calls do.
      send([payload, null]);
      const echoes = scenario.kind === "server-stream" ? serverStreamReplies : 1;
      for (let i = 0; i < echoes; i++) await expectEcho();
    }
    const end = await queue.next();
    if (end.value !== null) throw new Error("more replies than expected");
    if (end.status !== "0") throw new Error(`status ${end.status}`);
  } finally {
    clearTimeout(timer);
    unregister();
  }
}

/** Calls until one round trip works: the reply reader is then positioned and the responder up. */
export async function awaitFirstRoundTrip(
  call: (probe: Scenario, payload: Uint8Array) => Promise<void>,
): Promise<void> {
  const probe: Scenario = { id: "probe", title: "probe", kind: "unary", payloadBytes: 16 };
  const payload = echoRequestBytes(echoTextOfSize(16));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const attempt = call(probe, payload);
    const ok = await Promise.race([
      attempt.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500)),
    ]);
    attempt.catch(() => {});
    if (ok) return;
    if (Date.now() > deadline) throw new Error("no floor round trip within 30 s");
  }
}

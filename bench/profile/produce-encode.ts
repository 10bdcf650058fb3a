/**
 * What writing Produce requests costs, without a socket: a run of requests of 1 to 60 records
 * (100-byte and 10 KiB values, the headers a north request record carries) written the way a
 * broker connection writes them (`produceApi.writeRequest` into a request buffer), timed per
 * request and per record. `--baseline DIR` times another checkout's encoder in alternating
 * rounds (one without `produceApi.requestBytes` sizes each buffer like the last request, as
 * such checkouts did).
 *
 *   npx bun bench/profile/produce-encode.ts [--baseline /tmp/old-checkout] [--rounds 3]
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "../lib/child-channel.ts";

const args = parseArgs();
const rounds = Number(args.get("rounds") ?? 3);
const baseline = args.get("baseline");

interface Encoder {
  label: string;
  // biome-ignore lint/suspicious/noExplicitAny: modules of another checkout, typed loosely
  produceApi: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  Writer: any;
}

async function encoderOf(label: string, root: string): Promise<Encoder> {
  const produce = await import(resolve(root, "src/kafka/client/apis/produce.ts"));
  const wire = await import(resolve(root, "src/kafka/protocol/wire.ts"));
  return { label, produceApi: produce.produceApi, Writer: wire.Writer };
}

const headers = [
  ["zilla:correlation-id", "3f1c0e7a-1b2c-4d5e-8f90-123456789abc-0123456789abcdef0123456789abcdef"],
  ["zilla:service", "example.EchoService"],
  ["zilla:method", "EchoUnary"],
  ["zilla:reply-to", "echo-responses"],
  ["content-type", "application/grpc"],
  ["te", "trailers"],
] as const;

function requests(valueBytes: number) {
  return [1, 25, 3, 60, 1, 8, 40, 2].map((n) => ({
    acks: -1,
    timeoutMs: 30_000,
    timestamp: 1,
    topics: new Map([
      [
        "echo-requests",
        [
          {
            partition: 0,
            records: Array.from({ length: n }, (_, i) => ({
              key: `key-${i}`,
              value: new Uint8Array(valueBytes).fill(i),
              headers,
            })),
          },
        ],
      ],
    ]),
  }));
}

/** µs per request and per record of writing `batch` `times` times over. */
function time(encoder: Encoder, batch: ReturnType<typeof requests>, times: number) {
  const { produceApi, Writer } = encoder;
  let spare: { reset(n: number): unknown } | undefined;
  let last = 256;
  const writeAll = () => {
    for (const request of batch) {
      const bound = produceApi.requestBytes?.(request);
      const w =
        bound === undefined
          ? new Writer(last)
          : spare
            ? spare.reset(bound + 64)
            : new Writer(bound);
      produceApi.writeRequest(w, 8, request);
      if (bound === undefined) last = Math.min(Math.ceil(w.offset * 1.25), 1 << 20);
      else spare = w;
    }
  };
  for (let i = 0; i < times / 5; i++) writeAll();
  const started = performance.now();
  for (let i = 0; i < times; i++) writeAll();
  const perRequest = ((performance.now() - started) * 1000) / times / batch.length;
  const records = batch.reduce(
    (n, r) => n + (r.topics.get("echo-requests")?.[0]?.records.length ?? 0),
    0,
  );
  return { perRequest, perRecord: (perRequest * batch.length) / records };
}

const encoders = [
  await encoderOf("this checkout", fileURLToPath(new URL("../../", import.meta.url))),
];
if (baseline) encoders.unshift(await encoderOf(`baseline ${baseline}`, baseline));
for (const valueBytes of [100, 10_240]) {
  const batch = requests(valueBytes);
  for (let round = 1; round <= rounds; round++) {
    for (const encoder of encoders) {
      const { perRequest, perRecord } = time(encoder, batch, valueBytes > 1000 ? 300 : 1000);
      console.log(
        `${valueBytes} B values, round ${round}, ${encoder.label}: ${perRequest.toFixed(1)} µs per request, ${perRecord.toFixed(2)} µs per record`,
      );
    }
  }
}

/**
 * A measurement prototype, not a Kafka client for the gateway: the least a produce/fetch
 * client needs for the gateway's request/reply traffic, over the broker's own wire code
 * (src/broker/protocol/), to tell how much of the gateway's CPU per call is kafkajs. One
 * pipelined connection per role; Produce v3 batched per event-loop turn with one request in
 * flight; Fetch v4 long-polls over fixed partitions (no consumer group, no commits, no
 * retries, no metadata: the bench broker is the only node and its topics are known).
 */
import { connect, type Socket } from "node:net";
import { crc32c } from "../../src/broker/protocol/crc32c.ts";
import { Reader, Writer } from "../../src/broker/protocol/wire.ts";
import { murmur2 } from "../../src/kafka/murmur2-partitioner.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One pipelined Kafka connection: size-prefixed frames, answers matched by correlation id. */
export class ThinConnection {
  private readonly socket: Socket;
  private readonly pending = new Map<number, (reader: Reader) => void>();
  private nextId = 1;
  private chunks: Buffer[] = [];
  private buffered = 0;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {});
  }

  static open(bootstrap: string): Promise<ThinConnection> {
    const [host, port] = bootstrap.split(":") as [string, string];
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), host);
      socket.once("connect", () => resolve(new ThinConnection(socket)));
      socket.once("error", reject);
    });
  }

  request(apiKey: number, version: number, body: (w: Writer) => void): Promise<Reader> {
    const id = this.nextId++;
    const w = new Writer(256);
    const sizeAt = w.reserveInt32();
    w.int16(apiKey).int16(version).int32(id).nullableString("thin");
    body(w);
    w.patchInt32(sizeAt, w.length - 4);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.socket.write(w.bytesView());
    });
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 4) return;
      let data = this.chunks[0] as Buffer;
      if (data.length < 4 || (this.chunks.length > 1 && data.length < 4 + data.readInt32BE(0))) {
        data = Buffer.concat(this.chunks);
        this.chunks = [data];
      }
      const size = data.readInt32BE(0);
      if (this.buffered < 4 + size) return;
      const frame = data.subarray(4, 4 + size);
      const rest = data.subarray(4 + size);
      this.chunks[0] = rest;
      if (rest.length === 0) this.chunks.shift();
      this.buffered -= 4 + size;
      const reader = new Reader(frame);
      const resolve = this.pending.get(reader.int32());
      if (resolve) {
        this.pending.delete(frame.readInt32BE(0));
        resolve(reader);
      }
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface ThinRecord {
  key: string;
  value: Uint8Array | null;
  headers: readonly (readonly [string, string])[];
}

/** One uncompressed magic-2 batch of `records`, all with timestamp `now`. */
export function encodeBatch(records: readonly ThinRecord[], now: number): Uint8Array {
  const w = new Writer(128 + records.length * 256);
  w.int64(0)
    .int32(0)
    .int32(0)
    .int8(2)
    .uint32(0)
    .int16(0)
    .int32(records.length - 1);
  w.int64(now).int64(now).int64(-1).int16(-1).int32(-1).int32(records.length);
  const body = new Writer(256);
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as ThinRecord;
    body.offset = 0;
    body.int8(0).varint(0).varint(i);
    const key = encoder.encode(r.key);
    body.varint(key.length).raw(key);
    if (r.value === null) body.varint(-1);
    else body.varint(r.value.length).raw(r.value);
    body.varint(r.headers.length);
    for (const [name, value] of r.headers) {
      const n = encoder.encode(name);
      const v = encoder.encode(value);
      body.varint(n.length).raw(n).varint(v.length).raw(v);
    }
    const bytes = body.bytesView();
    w.varint(bytes.length).raw(bytes);
  }
  const batch = w.bytesView().slice();
  const view = new DataView(batch.buffer);
  view.setInt32(8, batch.length - 12);
  view.setUint32(17, crc32c(batch, 21, batch.length));
  return batch;
}

export interface FetchedRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: Uint8Array | null;
  headers: [string, string][];
}

/** Decodes the records of the batches in `records` at or past `from`. */
export function decodeBatches(
  bytes: Uint8Array,
  partition: number,
  from: number,
  out: FetchedRecord[],
): number {
  let next = from;
  let at = 0;
  while (bytes.length - at >= 61) {
    const r = new Reader(bytes, at);
    const baseOffset = r.int64n();
    const batchLength = r.int32();
    if (at + 12 + batchLength > bytes.length) break;
    r.offset = at + 57;
    const count = r.int32();
    for (let i = 0; i < count; i++) {
      r.varint(); // record length
      r.int8();
      skipVarlong(r); // timestamp delta
      const offset = baseOffset + r.varint();
      const keyLength = r.varint();
      const key = keyLength < 0 ? null : decoder.decode(r.raw(keyLength));
      const valueLength = r.varint();
      const value = valueLength < 0 ? null : r.raw(valueLength);
      const headerCount = r.varint();
      const headers: [string, string][] = [];
      for (let h = 0; h < headerCount; h++) {
        const name = decoder.decode(r.raw(r.varint()));
        const valueBytes = r.varint();
        headers.push([name, valueBytes < 0 ? "" : decoder.decode(r.raw(valueBytes))]);
      }
      if (offset >= from) out.push({ partition, offset, key, value, headers });
      next = offset + 1;
    }
    at += 12 + batchLength;
  }
  return next;
}

function skipVarlong(r: Reader): void {
  for (let i = 0; i < 10; i++) if ((r.uint8() & 0x80) === 0) return;
}

/** Records gathered for one event-loop turn, one Produce in flight. */
export class ThinProducer {
  private readonly connection: ThinConnection;
  private readonly partitions: number;
  private queue: { topic: string; record: ThinRecord; resolve: () => void }[] = [];
  private inFlight = false;
  private scheduled = false;

  constructor(connection: ThinConnection, partitions: number) {
    this.connection = connection;
    this.partitions = partitions;
  }

  send(topic: string, record: ThinRecord): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ topic, record, resolve });
      if (!this.inFlight && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.inFlight = true;
    const byTopic = new Map<string, Map<number, ThinRecord[]>>();
    for (const { topic, record } of batch) {
      let parts = byTopic.get(topic);
      if (!parts) {
        parts = new Map();
        byTopic.set(topic, parts);
      }
      const p = (murmur2(encoder.encode(record.key)) & 0x7fffffff) % this.partitions;
      const list = parts.get(p);
      if (list) list.push(record);
      else parts.set(p, [record]);
    }
    const now = Date.now();
    void this.connection
      .request(0, 3, (w) => {
        w.nullableString(null).int16(1).int32(30_000);
        w.array([...byTopic], (w, [topic, parts]) => {
          w.string(topic);
          w.array([...parts], (w, [p, records]) => {
            w.int32(p).bytes(encodeBatch(records, now));
          });
        });
      })
      .then(() => {
        for (const q of batch) q.resolve();
        this.inFlight = false;
        if (this.queue.length > 0) this.flush();
      });
  }
}

/** Long-polls every partition of `topic`, from offset 0, handing records to `onRecords`. */
export function startFetchLoop(
  connection: ThinConnection,
  topic: string,
  partitions: number,
  maxWaitMs: number,
  onRecords: (records: FetchedRecord[]) => void,
): { stop(): void } {
  const next = Array.from({ length: partitions }, () => 0);
  let running = true;
  const loop = async () => {
    while (running) {
      const reader = await connection.request(1, 4, (w) => {
        w.int32(-1)
          .int32(maxWaitMs)
          .int32(1)
          .int32(10 * 1024 * 1024)
          .int8(0);
        w.array([topic], (w, t) => {
          w.string(t);
          w.array(
            next.map((offset, p) => [p, offset] as const),
            (w, [p, offset]) => {
              w.int32(p)
                .int64(offset)
                .int32(1024 * 1024);
            },
          );
        });
      });
      reader.int32(); // throttle
      const out: FetchedRecord[] = [];
      const topics = reader.int32();
      for (let t = 0; t < topics; t++) {
        reader.string();
        const count = reader.int32();
        for (let i = 0; i < count; i++) {
          const p = reader.int32();
          reader.int16(); // error
          reader.int64n(); // high watermark
          reader.int64n(); // last stable offset
          const aborted = reader.int32();
          for (let a = 0; a < aborted; a++) reader.raw(16);
          const records = reader.nullableBytes();
          if (records) next[p] = decodeBatches(records, p, next[p] as number, out);
        }
      }
      if (out.length > 0) onRecords(out);
    }
  };
  void loop();
  return {
    stop() {
      running = false;
    },
  };
}

/**
 * Memory for stored record batches that is reused rather than freed. Each partition log
 * copies the batches it appends into chunks of its own (16 KiB at first, doubling to 1 MiB
 * as the partition fills them); once retention or compaction has dropped every batch of a
 * full chunk, the chunk goes back to the broker's pool and a partition's next chunk comes
 * from there. Under steady traffic with age or size retention the broker then writes into
 * memory it already has instead of freshly allocated arrays, whose every page the kernel
 * faults in and zeroes (on a 2-core VM at unary 10 KiB that was half of the broker's CPU).
 *
 * A chunk is reused only when no response still refers to it: the connection pins the
 * chunks of each response it sends (`pinSegments`) until the socket has written it, and a
 * chunk whose batches are all gone waits for the next macrotask (`setImmediate`) before it
 * is reusable, because a Fetch answer is read from the log and handed to its connection
 * within one chain of microtasks, before which nothing pins it.
 */
import { setImmediate } from "node:timers";

/** A partition's first chunk; each next one is twice its predecessor, up to the largest. */
const FIRST_CHUNK_BYTES = 16 * 1024;
const LARGEST_CHUNK_BYTES = 1024 * 1024;
/** Batches this large or larger are not copied into chunks (see PartitionLog.append). */
export const ARENA_MAX_BATCH_BYTES = LARGEST_CHUNK_BYTES / 4;
/**
 * Free chunks kept for reuse: up to as many bytes as chunks in use, and at least this many;
 * beyond it a free chunk is left to the GC. (Traffic that moves between topics frees one
 * topic's chunks in bulk while another's fill: the pool must hold what the next ones need.)
 */
const MIN_POOL_LIMIT_BYTES = 64 * 1024 * 1024;

/** One chunk of batch memory. */
export class ArenaChunk {
  readonly bytes: Uint8Array;
  /** Bytes handed out so far. */
  used = 0;
  /** Bytes of the batches stored in it and not yet dropped (a batch is never empty). */
  liveBytes = 0;
  /** Responses being written that refer to it. */
  pins = 0;
  /** Its partition has moved on to a later chunk. */
  sealed = false;
  /** Queued to enter the pool at the next macrotask. */
  settling = false;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }

  /** Sealed and empty: waiting for its pins to go and a macrotask to pass, then reusable. */
  get freed(): boolean {
    return this.sealed && this.liveBytes === 0;
  }
}

/** The chunks of one broker: the pool of free ones, and which array belongs to which. */
export class BatchArena {
  /** Free chunks by size. */
  private readonly pool = new Map<number, ArenaChunk[]>();
  private pooledBytes = 0;
  /** Bytes of chunks taken and not yet freed. */
  private inUseBytes = 0;
  /** Every chunk by its array, so that a response's segments can be told apart. */
  private readonly owners = new WeakMap<ArrayBufferLike, ArenaChunk>();
  /** Freed, unpinned chunks that become reusable once the current macrotask is over. */
  private settling: ArenaChunk[] = [];
  private settleScheduled = false;

  /** A chunk of `size` bytes, reused when the pool has one. */
  take(size: number): ArenaChunk {
    this.inUseBytes += size;
    const reused = this.pool.get(size)?.pop();
    if (reused !== undefined) {
      this.pooledBytes -= size;
      reused.used = 0;
      reused.liveBytes = 0;
      reused.sealed = false;
      return reused;
    }
    const chunk = new ArenaChunk(size);
    this.owners.set(chunk.bytes.buffer, chunk);
    return chunk;
  }

  /** A chunk's last batch was dropped, or an empty chunk was sealed. */
  free(chunk: ArenaChunk): void {
    this.inUseBytes -= chunk.bytes.length;
    if (chunk.pins === 0) this.settle(chunk);
  }

  /**
   * Pins the chunks that `segments` (a response about to be written) refer to; returns them,
   * or undefined when there are none, for `unpin` once the response is written or dropped.
   */
  pinSegments(segments: readonly Uint8Array[]): ArenaChunk[] | undefined {
    let pinned: ArenaChunk[] | undefined;
    for (const segment of segments) {
      const chunk = this.owners.get(segment.buffer);
      if (chunk === undefined) continue;
      chunk.pins++;
      if (pinned === undefined) pinned = [chunk];
      else pinned.push(chunk);
    }
    return pinned;
  }

  /** Releases what `pinSegments` pinned. */
  unpin(chunks: readonly ArenaChunk[]): void {
    for (const chunk of chunks) {
      if (--chunk.pins === 0 && chunk.freed) this.settle(chunk);
    }
  }

  /** Bytes of free chunks waiting in the pool (for tests and the curious). */
  get freeBytes(): number {
    return this.pooledBytes;
  }

  private settle(chunk: ArenaChunk): void {
    if (chunk.settling) return;
    chunk.settling = true;
    this.settling.push(chunk);
    if (this.settleScheduled) return;
    this.settleScheduled = true;
    setImmediate(() => {
      this.settleScheduled = false;
      const settled = this.settling;
      this.settling = [];
      for (const c of settled) this.toPool(c);
    });
  }

  private toPool(chunk: ArenaChunk): void {
    chunk.settling = false;
    // Pinned since it was freed (an answer read before its last batch went, handed to the
    // connection later in the same chain of microtasks): its unpin settles it again.
    if (chunk.pins !== 0 || !chunk.freed) return;
    const size = chunk.bytes.length;
    if (this.pooledBytes + size > Math.max(MIN_POOL_LIMIT_BYTES, this.inUseBytes)) return;
    const list = this.pool.get(size);
    if (list === undefined) this.pool.set(size, [chunk]);
    else list.push(chunk);
    this.pooledBytes += size;
  }
}

/** Where one partition log's batches go: its current chunk, and the size of its next. */
export class ArenaCursor {
  private readonly arena: BatchArena;
  private current: ArenaChunk | undefined;
  private nextSize = FIRST_CHUNK_BYTES;

  constructor(arena: BatchArena) {
    this.arena = arena;
  }

  /** Copies `batch` (shorter than ARENA_MAX_BATCH_BYTES) into the current chunk. */
  copy(batch: Uint8Array): { bytes: Uint8Array; chunk: ArenaChunk } {
    let chunk = this.current;
    if (chunk === undefined || chunk.bytes.length - chunk.used < batch.length) {
      if (chunk !== undefined) this.seal(chunk);
      let size = this.nextSize;
      while (size < batch.length) size *= 2;
      chunk = this.arena.take(size);
      this.nextSize = Math.min(LARGEST_CHUNK_BYTES, size * 2);
      this.current = chunk;
    }
    const at = chunk.used;
    const bytes = chunk.bytes.subarray(at, at + batch.length);
    bytes.set(batch);
    chunk.used = at + batch.length;
    chunk.liveBytes += batch.length;
    return { bytes, chunk };
  }

  /** A batch of `size` bytes stored by `copy` in `chunk` was dropped. */
  release(chunk: ArenaChunk, size: number): void {
    chunk.liveBytes -= size;
    if (chunk.freed) this.arena.free(chunk);
  }

  /**
   * Whether `chunk` is a full one that holds less than half of its size in live batches
   * (compaction moves such batches on, so that a few survivors do not keep chunks alive).
   */
  isSparse(chunk: ArenaChunk): boolean {
    return chunk.sealed && chunk.liveBytes * 2 < chunk.bytes.length;
  }

  private seal(chunk: ArenaChunk): void {
    chunk.sealed = true;
    if (chunk.freed) this.arena.free(chunk);
  }
}

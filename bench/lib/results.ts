/** The shape of bench/results/<date>.json (and what the table and chart read). */
import type { ScaleOutResults } from "./scale-out.ts";

/**
 * gateway: the gRPC gateway; floor: the same round trip with plain kafkajs; native: the same
 * round trip on the gateway's own Kafka client without gRPC; direct: the echo upstream alone.
 */
export type TargetName = "gateway" | "floor" | "native" | "direct";
export const targetNames: readonly TargetName[] = ["gateway", "floor", "native", "direct"];

export interface PointFigures {
  /** OK calls in the measured window. */
  calls: number;
  failed: number;
  callsPerS: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Failure texts with counts, when any failed. */
  errors: Record<string, number>;
  loadGenerator: string;
  /** CPU seconds per 1,000 OK calls: the gateway's processes (gateway) or requester + responder (floors). */
  cpuSecondsPer1kCalls?: number;
  /** CPU seconds per 1,000 OK calls of the broker (every side uses it). */
  brokerCpuSecondsPer1kCalls?: number;
  /** CPU seconds per 1,000 OK calls of the echo upstream (gateway and direct). */
  upstreamCpuSecondsPer1kCalls?: number;
  /**
   * Cores the machine kept busy outside the bench's processes during the window (Linux):
   * another tenant's work, which slows whichever side it lands on.
   */
  machineOtherCores?: number;
  /** Calls the echo upstream received during the run (warm-up included), for h2load runs. */
  upstreamCalls?: number;
  /**
   * Calls/s of every round when the point was measured more than once (target points);
   * the other figures are the median round's.
   */
  roundsCallsPerS?: number[];
}

export interface ScenarioPoint {
  concurrency: number;
  gateway?: PointFigures;
  floor?: PointFigures;
  native?: PointFigures;
  direct?: PointFigures;
  /** gateway calls/s ÷ floor calls/s. */
  gatewayToFloorCallsRatio?: number;
  /** gateway calls/s ÷ native floor calls/s: what the gateway's gRPC layers cost. */
  gatewayToNativeCallsRatio?: number;
  /** gateway p50 − floor p50, ms. */
  gatewayP50AddedMs?: number;
  /** gateway p99 ÷ floor p99. */
  gatewayToFloorP99Ratio?: number;
}

export interface ScenarioResult {
  id: string;
  title: string;
  kind: string;
  payloadBytes: number;
  points: ScenarioPoint[];
}

export interface TargetCheck {
  name: string;
  goal: string;
  /** The measured value as shown; "n/a" when it could not be measured. */
  value: string;
  pass: boolean | null;
}

/** Memory per pending call at one count of pending calls, each measured on fresh processes. */
export interface PendingMemoryFigures {
  pendingCalls: number;
  /** North's process alone (split deployment; single: the one process), after a GC. */
  northIdleRssBytes: number | null;
  northPendingRssBytes: number | null;
  /** (north RSS with the calls pending − north idle RSS) ÷ pending calls. */
  northBytesPerCall: number | null;
  /** The JS heap part of it. */
  northHeapBytesPerCall: number | null;
  /** North and west together (what older results called memoryPerPendingCallBytes). */
  gatewayBytesPerCall: number | null;
  /** A bare node:http2 server of the same runtime holding as many streams. */
  http2StreamBytes: number | null;
  /** northBytesPerCall ÷ http2StreamBytes. */
  northToHttp2StreamRatio: number | null;
  /** Calls the upstream held when RSS was sampled (bounded by west's maxConcurrentCalls). */
  heldAtUpstream: number | null;
  /** Calls already answered when RSS was sampled (should be 0). */
  answeredEarly: number | null;
  /** Opening every call took this long (the calls must stay pending until sampled). */
  openMs: number | null;
}

export interface GatewayFigures {
  /** Spawn of the gateway process to its ready line (north accepting calls). */
  readyMs: number | null;
  /** The same, as the process measured it from its own start. */
  readyInProcessMs: number | null;
  /** Spawn to ready of the fresh gateway started for the pending-call test. */
  secondReadyMs: number | null;
  startupRssBytes: number | null;
  /** RSS after a GC of the fresh gateway, idle, just before the pending-call test. */
  idleRssBytes: number | null;
  /** Highest RSS during the load scenarios. */
  peakRssBytes: number | null;
  pendingCalls: number;
  /** RSS after a GC with `pendingCalls` calls held by the upstream. */
  pendingRssBytes: number | null;
  memoryPerPendingCallBytes: number | null;
  /** The JS heap part of it (heapUsed difference). */
  heapPerPendingCallBytes: number | null;
  /** The same measure on a fresh echo upstream called directly: HTTP/2 server plus connect-node. */
  directMemoryPerPendingCallBytes: number | null;
  /** The same measure on a bare node:http2 server that only holds the streams: the runtime's floor. */
  http2StreamBytes: number | null;
  /** Calls the upstream held when RSS was sampled (bounded by west's maxConcurrentCalls). */
  pendingAtUpstream: number | null;
  /** Pending calls that had already been answered when RSS was sampled (should be 0). */
  pendingAnsweredEarly: number | null;
  /** Gateway CPU seconds per 1,000 calls, unary 100 B at concurrency 64. */
  cpuSecondsPer1kCalls: number | null;
  /**
   * Memory per pending call in north's process at each count (--pending-calls, default
   * 10,000 and 100,000; the fields above are the first count's, both processes).
   */
  pendingMemory?: PendingMemoryFigures[];
}

export interface BenchResults {
  date: string;
  command: string;
  smoke: boolean;
  runtime: string;
  machine: { cores: number; memoryBytes: number; cpuModel: string; platform: string };
  loadGenerator: {
    unary: string;
    streaming: string;
    floor: string;
    native?: string;
    gateway?: string;
  };
  settings: {
    concurrencies: number[];
    warmupMs: number;
    durationMs: number;
    partitions: number;
    connectionsMax: number;
    loadProcesses: number;
    /** Rounds of the target points (older results: 1). */
    targetRounds?: number;
    /** MIMALLOC_PURGE_DELAY of every process (older results: Bun's default, not recorded). */
    allocatorPurgeDelay?: string;
    /** MIMALLOC_PURGE_HOLES of every process (older results: Bun's default, not recorded). */
    allocatorPurgeHoles?: string;
    /** Unmeasured run per side at c=64 before each scenario (absent in older results). */
    settleMs?: number;
    /** West's idempotency store (absent in older results: kafka, the changelog). */
    idempotencyStore?: "kafka" | "memory";
  };
  unaryC64RatioToFloor: number | null;
  unaryC1P50AddedMs: number | null;
  unaryC256P99RatioToFloor: number | null;
  /** Server streaming at 64 calls: gateway calls/s ÷ kafkajs floor calls/s. */
  serverStreamC64RatioToFloor?: number | null;
  /** Bidi at 64 calls: gateway calls/s ÷ kafkajs floor calls/s. */
  bidiC64RatioToFloor?: number | null;
  /** Unary 100 B at 64 calls: gateway calls/s ÷ native floor calls/s. */
  unaryC64RatioToNativeFloor?: number | null;
  failedCalls: { gateway: number; floor: number; native?: number; direct: number };
  gateway: GatewayFigures;
  scenarios: ScenarioResult[];
  /**
   * Reply records fetched ÷ reply records produced, 8 north instances sharing one reply topic
   * of 16 partitions through the reply group (scale-out phase; absent in older results).
   */
  replyReadAmplification8?: number | null;
  /** Calls/s of `gateway start --workers 2` ÷ `--workers 1` (scale-out phase). */
  workers2Speedup?: number | null;
  scaleOut?: ScaleOutResults;
  targets: TargetCheck[];
  /** Problems that kept something from being measured. */
  problems: string[];
  wallSeconds: number;
}

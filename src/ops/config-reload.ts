/**
 * What a changed zilla.yaml may change in a running gateway. Routes (with their guarded
 * roles), served services and methods, the CORS policy and the guards (keys, issuer,
 * audience, claims) are looked up per call, so they swap in place; anything bound
 * at start (listeners, the Kafka connection, a binding's options, the consumed topics,
 * bindings added or removed, telemetry) needs a restart and is reported, not applied.
 */
import type { GatewayConfig, NorthConfig, WestConfig } from "../config/types.ts";

export interface ReloadPlan {
  /** North bindings to update, with the config each should run (changeable parts only). */
  north: NorthConfig[];
  /** West bindings to update, with the config each should run. */
  west: WestConfig[];
  /** Changes that are not applied, one line each, saying what to do. */
  needsRestart: string[];
}

/** Compares the running config with a new one and splits the changes. */
export function planReload(current: GatewayConfig, next: GatewayConfig): ReloadPlan {
  const plan: ReloadPlan = { north: [], west: [], needsRestart: [] };
  const restart = (what: string) => plan.needsRestart.push(`${what}: restart the gateway to apply`);
  if (current.name !== next.name) restart(`name ${current.name} → ${next.name}`);
  if (!same(current.kafka, next.kafka)) restart("kafka servers or client options changed");
  if (!same(current.telemetry, next.telemetry)) restart("telemetry changed");

  for (const now of current.north) {
    const then = next.north.find((n) => n.binding === now.binding);
    if (!then) {
      restart(`north ${now.binding} removed`);
      continue;
    }
    if (!same(now.listeners, then.listeners)) restart(`north ${now.binding} listeners changed`);
    if (!same(now.options, then.options)) restart(`north ${now.binding} options changed`);
    const updated: NorthConfig = {
      ...now,
      services: then.services,
      routes: then.routes,
      ...(then.methods !== undefined ? { methods: then.methods } : { methods: undefined }),
      ...(then.accessControl !== undefined
        ? { accessControl: then.accessControl }
        : { accessControl: undefined }),
      // Guards (keys, issuer, roles claim) and guarded roles apply to the next call.
      guards: then.guards,
      methodGuards: then.methodGuards,
    };
    if (!same(updated, now)) plan.north.push(withoutUndefined(updated));
  }
  for (const n of next.north) {
    if (!current.north.some((c) => c.binding === n.binding)) restart(`north ${n.binding} added`);
  }

  for (const now of current.west) {
    const then = next.west.find((w) => w.binding === now.binding);
    if (!then) {
      restart(`west ${now.binding} removed`);
      continue;
    }
    if (!same(now.options, then.options)) restart(`west ${now.binding} options changed`);
    if (!same(now.routes, then.routes)) plan.west.push({ ...now, routes: then.routes });
  }
  for (const w of next.west) {
    if (!current.west.some((c) => c.binding === w.binding)) restart(`west ${w.binding} added`);
  }
  return plan;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, bytesAsText) === JSON.stringify(b, bytesAsText);
}

function bytesAsText(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString("base64") : value;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

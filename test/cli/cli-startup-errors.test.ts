/**
 * What a user sees when a start fails or they ask for help: every command answers `--help`
 * (and `help COMMAND`) with its own options; a port in use, a Kafka that does not answer, a
 * wrong keystore password and a YAML syntax error each print one line that names the thing
 * (port, servers, keystore file and environment variable, file position once) and what to
 * do, with no stack trace, and exit with the documented code (1 failed, 2 invalid config).
 * Ports here are free ones taken on purpose; the fixed ports are cli-example.test.ts's.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Broker, startBroker } from "../../src/broker/broker.ts";
import {
  cliCommand,
  exampleConfig,
  exampleKeystorePassword,
  repoRoot,
  run,
} from "../support/gateway-process.ts";

const env = {
  KEYSTORE_PASSWORD: exampleKeystorePassword,
  ECHO_SERVER_HOST: "127.0.0.1",
  ECHO_SERVER_PORT: "50051",
};
let dir: string;
let broker: Broker;
/** A port held by this test process, so that the gateway finds it in use. */
let taken: Server;
let takenPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cli-startup-"));
  broker = await startBroker({ port: 0 });
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, "0.0.0.0", resolve));
  takenPort = (taken.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => taken?.close(() => resolve()));
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function gateway(args: string[], extraEnv: Record<string, string> = {}) {
  const { command, args: base } = cliCommand("bun");
  return run(command, [...base, ...args], { env: { ...env, ...extraEnv } });
}

/** The example copied next to its proto and keystore, with `edit` applied to its text. */
function exampleCopy(name: string, edit: (text: string) => string): string {
  const example = join(repoRoot, "examples/grpc.kafka.proxy");
  cpSync(join(example, "proto"), join(dir, "proto"), { recursive: true });
  cpSync(join(example, "tls"), join(dir, "tls"), { recursive: true });
  const text = readFileSync(join(example, "zilla.yaml"), "utf8");
  const edited = edit(text);
  expect(edited).not.toBe(text);
  const file = join(dir, name);
  writeFileSync(file, edited);
  return file;
}

/** The one line on stderr, checked to be the only one and to carry no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  return lines[0] as string;
}

describe("help", () => {
  test.each([
    ["", "usage: gateway [options]"],
    ["start", "usage: gateway start --config FILE"],
    ["validate", "usage: gateway validate --config FILE"],
    ["broker", "usage: gateway broker [options]"],
    ["echo-upstream", "usage: gateway echo-upstream [options]"],
  ])("help.%s", async (word, heading) => {
    const flag = await gateway([...(word ? [word] : []), "--help"]);
    expect(flag.code, flag.stderr).toBe(0);
    expect(flag.stdout).toContain(heading);
    expect(flag.stdout).toContain("-h, --help");
    if (word) {
      const named = await gateway(["help", word]);
      expect(named.code).toBe(0);
      expect(named.stdout).toBe(flag.stdout);
    }
  });

  test("help.option.of.another.command.is.usage.error", async () => {
    const result = await gateway(["broker", "--config", "x.yaml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^gateway broker: Unknown option '--config'/);
    expect(result.stderr).toContain("usage: gateway broker [options]");
  });
});

describe("one-line start-up errors", () => {
  test("yaml.syntax.error.located.once", async () => {
    const file = exampleCopy("syntax.yaml", (t) => t.replace("bindings:\n", "bindings:\n  [x\n"));
    const result = await gateway(["validate", "--config", file]);
    expect(result.code).toBe(2);
    const line = oneLine(result.stderr);
    expect(line).toMatch(new RegExp(`^${escapeRegExp(file)}:\\d+:\\d+: YAML syntax error: `));
    // The position is written once (it used to follow the file name a second time).
    expect(line.match(/:\d+:\d+/g)).toHaveLength(1);
  });

  test("wrong.keystore.password", async () => {
    const result = await gateway(
      ["start", "--config", exampleConfig, "--kafka-servers", broker.bootstrap, "--ops-port", "0"],
      { KEYSTORE_PASSWORD: "not-the-password" },
    );
    expect(result.code).toBe(2);
    const line = oneLine(result.stderr);
    expect(line).toContain(
      "wrong password for keystore examples/grpc.kafka.proxy/tls/localhost.p12",
    );
    expect(line).toContain("set KEYSTORE_PASSWORD to the keystore's password");
  });

  test("kafka.unreachable", async () => {
    const closed = await closedPort();
    const result = await gateway([
      "start",
      "--config",
      exampleConfig,
      "--kafka-servers",
      `127.0.0.1:${closed}`,
      "--ephemeral-ports",
      "--ops-port",
      "0",
    ]);
    expect(result.code).toBe(1);
    const line = oneLine(result.stderr);
    expect(line).toMatch(
      new RegExp(
        `^cannot reach Kafka at 127\\.0\\.0\\.1:${closed} \\(from --kafka-servers; tried 127\\.0\\.0\\.1:${closed}: .*ECONNREFUSED.*\\); start Kafka there, or pass --kafka-servers HOST:PORT`,
      ),
    );
  });

  test("ops.port.in.use", async () => {
    const result = await gateway([
      "start",
      "--config",
      exampleConfig,
      "--kafka-servers",
      broker.bootstrap,
      "--ephemeral-ports",
      "--ops-port",
      String(takenPort),
    ]);
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toBe(
      `port ${takenPort} is in use by another process (the ops port: /healthz /readyz /metrics); stop that process, or pass --ops-port N (0 = any free port) or --ops-port off`,
    );
  });

  test("north.port.in.use", async () => {
    const file = exampleCopy("taken.yaml", (t) => t.replaceAll("7151", String(takenPort)));
    const result = await gateway([
      "start",
      "--config",
      file,
      "--kafka-servers",
      broker.bootstrap,
      "--ops-port",
      "0",
    ]);
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toBe(
      `port ${takenPort} is in use by another process (gRPC h2c listener of north_grpc_kafka_mapping); stop that process, or change the tcp server's options.port in ${file}, or pass --ephemeral-ports to bind free ports`,
    );
  });

  test.each(["broker", "echo-upstream"])("%s.port.in.use", async (command) => {
    const result = await gateway([command, "--port", String(takenPort)]);
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(
      new RegExp(
        `^port ${takenPort} is in use by another process \\(the .+'s port\\); stop that process, or pass --port N`,
      ),
    );
  });
});

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

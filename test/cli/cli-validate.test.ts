/**
 * `gateway validate --config FILE`: the example prints its pipelines and exits 0; a copy
 * with an unknown key and an exit to a binding that does not exist prints one error per
 * line, each with its file position and path, and exits 2. Bad usage exits 2 too.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
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

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cli-validate-"));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function gateway(args: string[]) {
  const { command, args: base } = cliCommand("bun");
  return run(command, [...base, ...args], { env });
}

describe("gateway validate", () => {
  test("validate.example.pipelines", async () => {
    const result = await gateway([
      "validate",
      "--config",
      exampleConfig,
      "--kafka-servers",
      "127.0.0.1:9092",
    ]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines).toContain("kafka 127.0.0.1:9092");
    expect(lines).toContain("north north_grpc_kafka_mapping");
    expect(lines).toContain("  listen 0.0.0.0:7151 h2c");
    expect(lines).toContain("  listen 0.0.0.0:7153 tls (alpn h2, sni localhost, pkcs12 keystore)");
    expect(lines).toContain(
      "  route grpc.examples.echo.Echo/* → produce echo-requests (acks leader_only, reply-to echo-responses)",
    );
    expect(lines).toContain(
      "  route echo-requests (reply-to echo-responses, method grpc.examples.echo.Echo/*) → http://127.0.0.1:50051",
    );
    expect(result.stderr).not.toMatch(/error/i);
  });

  test("validate.broken.one.error.per.line", async () => {
    // A copy of the example next to its proto and keystore, with two mistakes.
    const example = join(repoRoot, "examples/grpc.kafka.proxy");
    cpSync(join(example, "proto"), join(dir, "proto"), { recursive: true });
    cpSync(join(example, "tls"), join(dir, "tls"), { recursive: true });
    const text = readFileSync(join(example, "zilla.yaml"), "utf8");
    const broken = text
      .replace("    exit: north_grpc_server\n", "    exit: north_grpc_serverr\n")
      .replace(
        "  north_grpc_kafka_mapping:\n    type: grpc-kafka\n",
        "  north_grpc_kafka_mapping:\n    type: grpc-kafka\n    colour: blue\n",
      );
    expect(broken).not.toBe(text);
    const file = join(dir, "zilla.yaml");
    writeFileSync(file, broken);
    const lineOf = (needle: string) => broken.split("\n").findIndex((l) => l.includes(needle)) + 1;

    const result = await gateway(["validate", "--config", file]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${escapeRegExp(file)}:${lineOf("north_grpc_serverr")}:\\d+: bindings\\.north_http_server\\.exit: .*"north_grpc_serverr".*did you mean "north_grpc_server"`,
      ),
    );
    expect(lines[1]).toMatch(
      new RegExp(
        `^${escapeRegExp(file)}:${lineOf("colour: blue")}:\\d+: bindings\\.north_grpc_kafka_mapping\\.colour: unknown key "colour"`,
      ),
    );

    // `start` refuses the same file the same way, before binding anything.
    const start = await gateway(["start", "--config", file, "--ops-port", "0"]);
    expect(start.code).toBe(2);
    expect(start.stderr.trimEnd().split("\n")).toEqual(lines);
  });

  test("usage.errors.exit.2", async () => {
    const missing = await gateway(["validate"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--config FILE is required");
    const badFlag = await gateway(["start", "--config", exampleConfig, "--ops-port", "seven"]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("--ops-port");
    const noFile = await gateway(["validate", "--config", join(dir, "absent.yaml")]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr.trimEnd()).toBe(
      `${join(dir, "absent.yaml")}: cannot read the config file: the file does not exist; check the path`,
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// Fails when `buf generate` would change gen/: generated code must be committed up to date.
import { execFileSync } from "node:child_process";

execFileSync("npx", ["buf", "generate"], { stdio: "inherit" });
const changed = execFileSync("git", ["status", "--porcelain", "--", "gen"], { encoding: "utf8" });
if (changed.trim() !== "") {
  console.error(`gen/ is out of date with proto/; run "npm run generate" and commit:\n${changed}`);
  process.exit(1);
}
console.log("gen/ is up to date");

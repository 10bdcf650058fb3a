#!/usr/bin/env bash
# Builds librdkafka's mock cluster as a process (the team's mockkafka.c, kept beside the
# repository in ../shared/tools/mockkafka/) into node_modules/.cache/mockkafka/ and prints the
# binary's path. Rebuilds only when the source is newer. The test harness
# (test/support/mockkafka.ts) runs this too, so the mock-cluster scenarios work without .ci/run.
# Needs gcc and Debian's librdkafka-dev (.ci/run installs both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# The source: MOCKKAFKA_SOURCE, else ../shared beside the clone (CI), else two levels up (a
# git worktree kept in a folder beside shared/).
src="${MOCKKAFKA_SOURCE:-}"
if [ -z "$src" ]; then
  for candidate in "$root/../shared/tools/mockkafka/mockkafka.c" \
    "$root/../../shared/tools/mockkafka/mockkafka.c"; do
    if [ -f "$candidate" ]; then src="$candidate"; break; fi
  done
fi
if [ -z "$src" ] || [ ! -f "$src" ]; then
  echo "mockkafka: source not found: expected ../shared/tools/mockkafka/mockkafka.c beside the repository ($root), or set MOCKKAFKA_SOURCE" >&2
  exit 2
fi
if [ ! -f /usr/include/librdkafka/rdkafka_mock.h ]; then
  echo "mockkafka: librdkafka's headers are missing: apt-get install librdkafka-dev gcc (or run .ci/run)" >&2
  exit 2
fi
command -v gcc >/dev/null 2>&1 || { echo "mockkafka: gcc is missing: apt-get install gcc" >&2; exit 2; }

out_dir="$root/node_modules/.cache/mockkafka"
out="$out_dir/mockkafka"
prelude="$out_dir/die-with-parent.h"
mkdir -p "$out_dir"
# Added before the source: the mock dies with the process that started it, so a test run that
# is killed leaves no cluster behind (on stdin's end alone it would wait for a signal).
prelude_text='#include <sys/prctl.h>
#include <signal.h>
__attribute__((constructor)) static void die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }'
if [ ! -f "$prelude" ] || [ "$(cat "$prelude")" != "$prelude_text" ]; then
  printf '%s' "$prelude_text" >"$prelude.$$" && mv -f "$prelude.$$" "$prelude"
fi
if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$prelude" -nt "$out" ]; then
  # Built under a temporary name, then renamed: parallel test files may build at once.
  gcc -O2 -include "$prelude" -o "$out.$$" "$src" -lrdkafka
  mv -f "$out.$$" "$out"
fi
echo "$out"

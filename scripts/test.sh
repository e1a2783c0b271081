#!/usr/bin/env bash
# The test command (`npm test`): type-check, lint, then every test file by
# name (node 20's --test does not find .ts files in a directory). A run that
# executes no test fails. The timeout (600 s) bounds each test and, on node 20,
# each file as a whole: the longest failover files take about five minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

npx tsc --noEmit
npx eslint .

shopt -s nullglob
files=(test/unit/*.test.ts test/integration/*.test.ts)
if [ ${#files[@]} -eq 0 ]; then
  echo "no test files found" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
node --import tsx --test --test-reporter=spec --test-concurrency=1 --test-timeout=600000 "${files[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if ! grep -Eq '^ℹ tests [1-9]' "$log"; then
  echo "the test run executed no test" >&2
  exit 1
fi
exit "$status"

#!/usr/bin/env bash
# Peer test: run node-postgres's own integration suites against a PostgreSQL
# endpoint (a plain server or a Borealis endpoint) and summarise the results.
#
#   run-node-postgres.sh HOST PORT USER PASSWORD
#
# Suites: packages/pg/test/integration (pure JS; every *-tests.js file, as its
# Makefile's test-integration does), packages/pg-pool, packages/pg-cursor,
# packages/pg-query-stream (mocha). Skipped: pg-native and the pg "native"
# integration pass (need libpq), the Cloudflare worker tests (vitest + workerd),
# pg unit tests (no server involved).
#
# Environment:
#   NODE_POSTGRES_DIR   git directory of a node-postgres clone or mirror (required)
#   NODE_POSTGRES_REF   commit to test (default c9e57617)
#   NPG_WORK_DIR        where the tree is extracted and installed
#                       (default ${XDG_CACHE_HOME:-$HOME/.cache}/peer-node-postgres/<ref>); reused if present
#   NPG_OUT_DIR         logs and JSON results (default ./npg-results-<host>-<port>)
#   NPG_SUITES          subset of "pg pg-pool pg-cursor pg-query-stream" (default all)
#   NPG_PG_FILES        optional space-separated list of pg integration files (relative to packages/pg) to run
#   NPG_PG_BAIL=1       stop a pg test file at its first failing test, as upstream's runner does; by default the
#                       runner records the failure and lets the file go on, so later tests in the file are seen too
#                       (a test timeout or an uncaught exception still ends the file; the tests not reached are listed)
#   NPG_PG_SKIP_TESTS   titles of pg tests to skip, separated by '|' (e.g. one known to hang, so that the rest of
#                       its file still runs); they are reported as skipped
#   NPG_PG_SKIP_FILES   pg integration files (relative to packages/pg) not to run; reported as skipped
#   NPG_FILE_TIMEOUT    seconds per pg test file (default 120); NPG_MOCHA_TIMEOUT seconds per mocha suite (default 600)
#   PGDATABASE          database (default postgres)
#   PGTESTNOSSL         set to skip gh-issues/2085 (the server has no TLS)
#   SCRAM_TEST_PGUSER / SCRAM_TEST_PGPASSWORD, SCRAM_TEST_PGUSER_UNICODE / SCRAM_TEST_PGPASSWORD_UNICODE
#                       passed through to sasl-scram-tests.js (the roles must already exist); unset: those tests skip
#
# Needs node (>= 18), npm (the npm registry is used to install yarn 1 and the
# monorepo's locked dev dependencies), git, tar. Exit status: 0 if every suite
# passed, 1 otherwise.
set -uo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 HOST PORT USER PASSWORD" >&2
  exit 2
fi
HOST=$1 PORT=$2 DBUSER=$3 DBPASSWORD=$4
: "${NODE_POSTGRES_DIR:?set NODE_POSTGRES_DIR to a node-postgres git directory}"
REF=${NODE_POSTGRES_REF:-c9e57617}
WORK=${NPG_WORK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peer-node-postgres/$REF}
OUT=${NPG_OUT_DIR:-$PWD/npg-results-$HOST-$PORT}
SUITES=${NPG_SUITES:-pg pg-pool pg-cursor pg-query-stream}
FILE_TIMEOUT=${NPG_FILE_TIMEOUT:-120}
MOCHA_TIMEOUT=${NPG_MOCHA_TIMEOUT:-600}
YARN_VERSION=1.22.22

log() { printf '[peer-node-postgres] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- install
install_tree() {
  local marker="$WORK/.peer-installed"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$REF" ]; then
    log "using installed tree $WORK ($REF)"
    return 0
  fi
  log "extracting $REF from $NODE_POSTGRES_DIR into $WORK"
  rm -rf "$WORK" && mkdir -p "$WORK" || return 1
  git -C "$NODE_POSTGRES_DIR" archive "$REF" | tar -x -C "$WORK" || return 1
  mkdir -p "$WORK/.tools"
  log "installing yarn $YARN_VERSION (npm)"
  npm install --prefix "$WORK/.tools" --no-save --no-audit --no-fund "yarn@$YARN_VERSION" >"$WORK/.tools/npm.log" 2>&1 || {
    cat "$WORK/.tools/npm.log" >&2; return 1; }
  log "yarn install --frozen-lockfile (dev dependencies; install scripts off: no libpq build)"
  (cd "$WORK" && "$WORK/.tools/node_modules/.bin/yarn" install --frozen-lockfile --ignore-scripts --ignore-engines \
      --non-interactive --network-timeout 120000) >"$WORK/.tools/yarn.log" 2>&1 || {
    tail -40 "$WORK/.tools/yarn.log" >&2; return 1; }
  log "building TypeScript packages (tsc --build)"
  (cd "$WORK" && node_modules/.bin/tsc --build) >"$WORK/.tools/tsc.log" 2>&1 || {
    cat "$WORK/.tools/tsc.log" >&2; return 1; }
  echo "$REF" >"$marker"
}

# A preload for pg's own little test runner (packages/pg/test/suite.js): records
# each test's outcome in $NPG_RESULT_FILE. It wraps, it does not replace, the runner.
write_preload() {
  cat >"$WORK/.tools/pg-suite-recorder.cjs" <<'JS'
'use strict'
const fs = require('fs')
const path = require('path')
const Suite = require(path.join(process.env.NPG_PG_DIR, 'test', 'suite.js'))
const results = []
const registered = []
let current = null
let lastUncaught = null
const errText = (e) => (e && (e.stack || e.message)) ? String(e.stack || e.message) : String(e)
const skip = new Set((process.env.NPG_PG_SKIP_TESTS || '').split('|').map((s) => s.trim()).filter(Boolean))
const origTest = Suite.prototype.test
Suite.prototype.test = function (name, cb) {
  if (skip.has(name)) cb = undefined
  registered.push({ name, hasAction: !!cb })
  return origTest.call(this, name, cb)
}
const origRun = Suite.prototype.run
Suite.prototype.run = function (test, cb) {
  if (!test.action) { results.push({ name: test.name, status: 'skipped' }); return origRun.call(this, test, cb) }
  current = { name: test.name, started: Date.now() }
  const innerRun = test.run
  test.run = function (done) {
    return innerRun.call(this, (err) => {
      const rec = { name: test.name, ms: Date.now() - current.started }
      current = null
      if (err) {
        results.push({ ...rec, status: 'failed', error: errText(err) })
        if (process.env.NPG_PG_BAIL === '1') return done(err)
        process.stdout.write(`FAILED! (peer runner: recorded, continuing)\n\n${errText(err)}\n  `)
        return done()
      }
      results.push({ ...rec, status: 'passed' })
      done()
    })
  }
  return origRun.call(this, test, cb)
}
process.on('uncaughtException', (e) => { lastUncaught = e })
process.on('exit', (code) => {
  if (current) {
    results.push({ name: current.name, status: 'failed', ms: Date.now() - current.started,
      error: lastUncaught ? 'uncaught exception: ' + errText(lastUncaught) : `did not complete (file exited with code ${code}; test timeout or process.exit)` })
  } else if (lastUncaught) {
    const last = results.length ? results[results.length - 1].name : null
    results.push({ name: last ? `(after "${last}")` : '(whole file)', status: 'failed', error: 'uncaught exception: ' + errText(lastUncaught) })
  } else if (registered.length === 0 && results.length === 0) {
    // A file that is one script rather than a Suite: it passes by exiting 0.
    results.push({ name: '(whole file)', status: code === 0 ? 'passed' : 'failed', ...(code === 0 ? {} : { error: `exit code ${code}` }) })
  }
  const done = new Map()
  for (const r of results) done.set(r.name, (done.get(r.name) || 0) + 1)
  for (const t of registered) {
    const n = done.get(t.name) || 0
    if (n > 0) done.set(t.name, n - 1)
    else if (t.hasAction) results.push({ name: t.name, status: 'not-run' })
  }
  fs.writeFileSync(process.env.NPG_RESULT_FILE, JSON.stringify({ file: process.env.NPG_TEST_FILE, exitCode: code, tests: results }, null, 1))
})
JS
}

# ---------------------------------------------------------------- run
export PGHOST=$HOST PGPORT=$PORT PGUSER=$DBUSER PGPASSWORD=$DBPASSWORD PGDATABASE=${PGDATABASE:-postgres}
export USER=${USER:-$(id -un)}
export NODE_OPTIONS=
unset PGSSLMODE PGOPTIONS PGAPPNAME PGCONNECT_TIMEOUT PGSSLROOTCERT PGSSLCERT PGSSLKEY PG_CLIENT_CERT_TEST

run_pg() {
  local dir="$WORK/packages/pg" files f rel name status
  mkdir -p "$OUT/pg"
  if [ -n "${NPG_PG_FILES:-}" ]; then files=$NPG_PG_FILES
  else files=$(cd "$dir" && find test/integration -name '*-tests.js' | LC_ALL=C sort); fi
  for rel in $files; do
    name=$(echo "$rel" | sed 's#^test/integration/##; s#/#__#g')
    if [[ " ${NPG_PG_SKIP_FILES:-} " == *" $rel "* ]]; then
      printf '{"file":"%s","exitCode":0,"tests":[{"name":"(whole file)","status":"skipped"}]}\n' "$rel" >"$OUT/pg/$name.json"
      printf '  %-70s skipped\n' "$rel" >&2
      continue
    fi
    (cd "$dir" && NPG_PG_DIR="$dir" NPG_TEST_FILE="$rel" NPG_RESULT_FILE="$OUT/pg/$name.json" \
      timeout -k 10 "$FILE_TIMEOUT" node -r "$WORK/.tools/pg-suite-recorder.cjs" "$rel") >"$OUT/pg/$name.log" 2>&1
    status=$?
    if [ ! -f "$OUT/pg/$name.json" ]; then
      printf '{"file":"%s","exitCode":%s,"tests":[{"name":"(whole file)","status":"failed","error":"no result recorded (killed after %ss?)"}]}\n' \
        "$rel" "$status" "$FILE_TIMEOUT" >"$OUT/pg/$name.json"
    fi
    printf '  %-70s exit %s\n' "$rel" "$status" >&2
  done
}

run_mocha() { # suite-name, extra mocha args...
  local suite=$1; shift
  mkdir -p "$OUT"
  rm -f "$OUT/$suite.json"
  (cd "$WORK/packages/$suite" && timeout -k 10 "$MOCHA_TIMEOUT" node "$WORK/node_modules/mocha/bin/mocha.js" \
      --reporter json --reporter-option "output=$OUT/$suite.json" "$@") >"$OUT/$suite.log" 2>&1
  echo $? >"$OUT/$suite.exit"
  log "$suite: mocha exit $(cat "$OUT/$suite.exit")"
}

install_tree || { log "install failed"; exit 1; }
write_preload
rm -rf "$OUT" && mkdir -p "$OUT"
log "target $PGUSER@$PGHOST:$PGPORT/$PGDATABASE; results in $OUT"
for s in $SUITES; do
  case $s in
    pg) log "pg integration (pure JS)"; run_pg ;;
    pg-pool) log "pg-pool"; run_mocha pg-pool ;;          # spec ./test/*.js (includes test/setup.js)
    pg-cursor) log "pg-cursor"; run_mocha pg-cursor ;;
    pg-query-stream) log "pg-query-stream"; run_mocha pg-query-stream -r ts-node/register 'test/**/*.ts' ;;
    *) log "unknown suite $s"; exit 2 ;;
  esac
done

# ---------------------------------------------------------------- summary
NPG_OUT="$OUT" NPG_SUITES="$SUITES" NPG_WORK="$WORK" node - <<'JS'
const fs = require('fs'), path = require('path')
const out = process.env.NPG_OUT
let allOk = true
const summary = {}
const first = (s) => String(s || '').split('\n').slice(0, 6).join('\n      ')
for (const suite of process.env.NPG_SUITES.split(/\s+/).filter(Boolean)) {
  const failures = []
  let passed = 0, failed = 0, skipped = 0, notRun = 0
  if (suite === 'pg') {
    const dir = path.join(out, 'pg')
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
      const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))
      for (const t of r.tests) {
        if (t.status === 'passed') passed++
        else if (t.status === 'skipped') skipped++
        else if (t.status === 'not-run') { notRun++; failures.push({ file: r.file, title: t.name, error: 'not run (file ended early)' }) }
        else { failed++; failures.push({ file: r.file, title: t.name, error: t.error }) }
      }
      if (r.exitCode !== 0 && !r.tests.some((t) => t.status === 'failed')) {
        failed++; failures.push({ file: r.file, title: '(file exit status)', error: `exit code ${r.exitCode}; see ${f.replace(/json$/, 'log')}` })
      }
    }
  } else {
    const jf = path.join(out, suite + '.json')
    const exit = fs.existsSync(path.join(out, suite + '.exit')) ? fs.readFileSync(path.join(out, suite + '.exit'), 'utf8').trim() : '?'
    if (!fs.existsSync(jf)) { failed++; failures.push({ file: suite, title: '(whole suite)', error: `no mocha result (exit ${exit}); see ${suite}.log` }) }
    else {
      const r = JSON.parse(fs.readFileSync(jf, 'utf8'))
      passed = r.stats.passes; failed = r.stats.failures; skipped = r.stats.pending
      for (const t of r.failures) failures.push({ file: t.file ? path.relative(process.env.NPG_WORK, t.file) : suite, title: t.fullTitle, error: (t.err.message || '') + '\n' + (t.err.stack || '') })
      if (exit !== '0' && failed === 0) { failed++; failures.push({ file: suite, title: '(mocha exit status)', error: `exit ${exit} with no failing test (hung after the run and was killed? see ${suite}.log)` }) }
    }
  }
  summary[suite] = { passed, failed, skipped, notRun, failures }
  if (failed || notRun) allOk = false
}
fs.writeFileSync(path.join(out, 'summary.json'), JSON.stringify(summary, null, 1))
console.log('\nnode-postgres peer test summary (' + out + ')')
for (const [s, v] of Object.entries(summary)) console.log(`  ${s.padEnd(16)} passed ${v.passed}, failed ${v.failed}, skipped ${v.skipped}, not run ${v.notRun}`)
for (const [s, v] of Object.entries(summary)) {
  if (!v.failures.length) continue
  console.log(`\nfailing in ${s}:`)
  for (const f of v.failures) console.log(`  - [${f.file}] ${f.title}\n      ${first(f.error)}`)
}
const tot = Object.values(summary).reduce((a, v) => [a[0] + v.passed, a[1] + v.failed + v.notRun, a[2] + v.skipped], [0, 0, 0])
console.log(`\n${tot[0]} passed, ${tot[1]} failed, ${tot[2]} skipped`)
process.exitCode = allOk ? 0 : 1
JS

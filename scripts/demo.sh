#!/usr/bin/env bash
# Sets up etcd-shield on a fresh machine and shows a full cycle against a
# throwaway local etcd: seed, validate, backup, verify, wipe, dry run,
# restore, and a key-by-key comparison with what was there before; then a
# store, and the service (serve) with its API and metrics.
#   --keep-etcd   leave the demo's etcd running at the end (on 127.0.0.1:2379
#                 when that port is free), for examples/serve.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

keep_etcd=""
for arg in "$@"; do
  case "$arg" in
    --keep-etcd) keep_etcd=1 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 1 ;;
  esac
done

# Bold step titles on a terminal only: a log or a pipe gets plain text.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  step "installing Debian's etcd-server and etcd-client"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends etcd-server etcd-client
fi

if ! command -v age-keygen >/dev/null 2>&1; then
  step "installing Debian's age (the store part encrypts with it)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends age
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  step "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
step "building"
npm run --silent build

work=$(mktemp -d "${TMPDIR:-/tmp}/etcd-shield-demo-XXXXXX")
etcd_pid=""
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  if [ -n "$keep_etcd" ] && [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
    echo "etcd left running on $endpoint (pid $etcd_pid, data in $work); stop it with: kill $etcd_pid && rm -rf $work"
    return
  fi
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port_free() { node -e 'const s=require("net").createServer();s.once("error",()=>process.exit(1));s.listen(+process.argv[1],"127.0.0.1",()=>s.close())' "$1"; }
# etcd's own ports when they are free, so that examples/serve.yaml runs against this etcd as it is.
if port_free 2379 && port_free 2380; then
  client_port=2379 peer_port=2380
else
  client_port=$(free_port)
  peer_port=$(free_port)
  while [ "$peer_port" = "$client_port" ]; do peer_port=$(free_port); done
fi
endpoint="http://127.0.0.1:$client_port"

step "starting a throwaway etcd on $endpoint (data in $work)"
etcd --name demo --data-dir "$work/etcd" \
  --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "demo=http://127.0.0.1:$peer_port" \
  --logger zap --log-level error --log-outputs stderr 2>"$work/etcd.log" &
etcd_pid=$!

export ETCDCTL_API=3
ctl() { etcdctl --endpoints "$endpoint" "$@"; }
for _ in $(seq 1 50); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
ctl endpoint health

step "seeding sample data (1,000 service records, a config tree, leased session keys)"
node -e '
  const { Etcd3 } = require("etcd3");
  const c = new Etcd3({ hosts: process.argv[1] });
  (async () => {
    const ops = [];
    for (let i = 0; i < 1000; i++) ops.push(c.put(`/services/web/instance-${String(i).padStart(4, "0")}`).value(JSON.stringify({ host: `10.0.${i >> 8}.${i & 255}`, port: 8080 + (i % 10) })));
    await Promise.all(ops);
    await c.put("/config/greeting").value("héllo wörld ✓");
    await c.put("/config/empty").value("");
    await c.put("/config/multi").value("line one\nline two");
    const lease = c.lease(600, { autoKeepAlive: false });
    await lease.put("/sessions/alice").value("online");
    await lease.put("/sessions/bob").value("online");
    await lease.release();
    c.close();
  })().catch((e) => { console.error(e); process.exit(1); });
' "$endpoint"
ctl get "" --from-key --keys-only | grep -c . | xargs echo "keys in etcd:"
ctl get "" --from-key > "$work/before.txt"

cli=./bin/etcd-shield

step "validate: every field, then the connection"
$cli validate --endpoints "$endpoint"

step "backup to $work/etcd.archive"
$cli backup --endpoints "$endpoint" --out "$work/etcd.archive"

step "verify the archive without touching etcd"
$cli verify --in "$work/etcd.archive"

step "disaster: wiping every key"
ctl del "" --from-key
ctl put /intruder "written after the backup" >/dev/null
ctl get "" --from-key --keys-only | grep -c . | xargs echo "keys in etcd:"

step "restore --dry-run --overwrite (nothing changes)"
$cli restore --endpoints "$endpoint" --overwrite --dry-run --in "$work/etcd.archive"

step "restore --overwrite from standard input, as SHIELD does"
$cli restore -e "{\"url\":\"$endpoint\",\"overwrite\":true}" < "$work/etcd.archive"

step "checking: every key and value as before, leases re-attached"
ctl get "" --from-key > "$work/after.txt"
if cmp -s "$work/before.txt" "$work/after.txt"; then
  echo "identical: $(grep -c . "$work/after.txt" | awk '{print $1/2}') keys restored exactly, /intruder removed"
else
  echo "MISMATCH between before and after:" >&2
  diff "$work/before.txt" "$work/after.txt" | head -20 >&2
  exit 1
fi
ctl lease list
ctl get /sessions/alice -w fields | grep -E '"Lease"'

step "a store: two backups into $work/store, zstd-compressed and encrypted with a new age key"
age-keygen -o "$work/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/key.txt")
$cli backup --endpoints "$endpoint" --to "$work/store" --encrypt-to "$recipient"
ctl put /config/feature-x "switched on after the first backup" >/dev/null
$cli backup --endpoints "$endpoint" --to "$work/store" --encrypt-to "$recipient"
$cli list --from "$work/store"

step "verify every stored backup end to end (download, decrypt, decompress, check)"
$cli verify --from "$work/store" --all --identity "$work/key.txt"

step "prune --keep-last 1 --dry-run: what retention would keep and delete"
$cli prune --from "$work/store" --keep-last 1 --dry-run

step "restore the first backup from the store (--backup NAME): /config/feature-x goes away"
first=$($cli list --from "$work/store" --json | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>console.log(JSON.parse(s).backups[0].name))')
$cli restore --endpoints "$endpoint" --from "$work/store" --backup "$first" --identity "$work/key.txt" --overwrite
if [ -n "$(ctl get /config/feature-x)" ]; then
  echo "MISMATCH: /config/feature-x is still there after restoring a backup taken before it" >&2
  exit 1
fi
echo "/config/feature-x is gone, as it was when the first backup was taken"

step "the service: etcd-shield serve with examples/serve.yaml, pointed at this etcd"
serve_port=$(free_port)
sed -e "s#http://127.0.0.1:2379#$endpoint#" -e "s#^listen: .*#listen: 127.0.0.1:$serve_port#" \
  -e "s#to: ./backups/demo#to: $work/served#" examples/serve.yaml > "$work/serve.yaml"
$cli serve --check --config "$work/serve.yaml" | head -2
$cli serve --config "$work/serve.yaml" 2> "$work/serve.log" &
serve_pid=$!
echo "serve is running (pid $serve_pid), log in $work/serve.log; its store is empty, so a first backup runs at once"
node -e '
  const base = process.argv[1];
  const get = async (path) => { const r = await fetch(base + path); return path === "/metrics" ? r.text() : r.json(); };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const job = async () => (await get("/api/jobs")).jobs[0];
  (async () => {
    for (let i = 0; i < 300; i++) {
      try { const j = await job(); if (j.lastSuccess) break; } catch { /* not listening yet */ }
      await sleep(100);
    }
    let j = await job();
    if (!j.lastSuccess) throw new Error("no backup after 30 s: see the log");
    const s = j.lastSuccess;
    console.log(`GET /api/jobs: job "${j.name}" is ${j.health}: ${s.trigger} backup ${s.backup}, ${s.keys} keys, ${s.bytes} bytes stored, revision ${s.revision}; next run ${j.nextRun}`);
    const posted = await fetch(base + "/api/jobs/demo/run", { method: "POST" });
    const { run } = await posted.json();
    console.log(`POST /api/jobs/demo/run: ${posted.status}, run ${run.id}`);
    let r = run;
    while (r.status === "running") { await sleep(100); r = await get("/api/runs/" + run.id); }
    console.log(`GET /api/runs/${run.id}: ${r.status} in ${r.durationSeconds} s`);
    if (r.status !== "succeeded") throw new Error(JSON.stringify(r.error));
    j = await job();
    console.log(`backups in the store: ${j.backupsKept}`);
    const metrics = (await get("/metrics")).split("\n").filter((l) => /^etcd_shield_(backup_successes_total|backups_kept|last_run_keys|leader)/.test(l));
    console.log("GET /metrics:\n  " + metrics.join("\n  "));
  })().catch((e) => { console.error("MISMATCH:", e.message); process.exit(1); });
' "http://127.0.0.1:$serve_port"
kill -TERM "$serve_pid"
wait "$serve_pid"
serve_pid=""
echo "serve stopped on SIGTERM; its last log line: $(tail -n 1 "$work/serve.log")"

step "demo finished: etcd-shield backed up, verified and restored a cluster, from a file and from a store, and ran as a service"

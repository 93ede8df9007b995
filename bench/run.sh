#!/usr/bin/env bash
# run.sh -- meshlab's benchmarks, measured in one run, written to BENCHMARKS.md.
#
# What it measures (everything on 127.0.0.0/8, ports 18000-18999 and the
# embedded lab's random 127.x.y.0/24 range)
#   1. meshlab's productpage -> details path with `loadgen load --as productpage`
#      against an embedded lab started by each loadgen run, closed loop, at 16
#      and at 1 connection: plaintext (sidecar skipped), mTLS on kept
#      connections, mTLS + AuthorizationPolicy, mTLS + RequestAuthentication
#      with an RS256 JWT, and a full (or resumed) mutual TLS 1.3 handshake per
#      request. CPU per request is the whole loadgen process: client, both
#      sidecars and the details app.
#   2. the nginx and haproxy mTLS sidecar pairs with wrk (bench/peers.sh).
#   3. the loadgen's maximum request rate against wrk's, -t1 against
#      --threads 1, same connections, on a plaintext nginx (:18180) pinned to
#      core 0. Each tool runs once on the server's core, where the rate
#      depends only on the CPU it spends per request, and once on core 1.
#      CPU per request comes from getrusage.
#   4. the loadgen's own CPU at 1000 qps on that nginx, against a minimal
#      epoll client with the same schedule (loadgen/examples/minimal_client.rs),
#      and its peak memory with 1000 connections.
#
# Usage:  bash bench/run.sh                 (DUR=5s per cell, about 8 minutes)
#         DUR=10s bash bench/run.sh         (steadier figures, about 14 minutes)
#         LOADGEN=path bash bench/run.sh    (use built binaries, skip cargo build:
#                                            also needs examples/minimal_client
#                                            beside it, or MINIMAL_CLIENT=path)
#         OUT=file bash bench/run.sh        (write elsewhere than BENCHMARKS.md)
# Needs:  apt-get install -y nginx haproxy wrk openssl curl python3, and cargo.
#
# Safety: servers bind 127.0.0.1 only. Every process started here is recorded
# by PID and stopped by PID on exit, and every load run is bounded in time.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DUR=${DUR:-5s}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
WORK=$(mktemp -d /tmp/meshlab-bench.XXXXXX)
PIDS=()
COMMAND_LINE="DUR=$DUR bash bench/run.sh"

cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "# work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

need() { command -v "$1" >/dev/null || { echo "missing: $1 (apt-get install -y $2)" >&2; exit 1; }; }
need nginx nginx; need haproxy haproxy; need wrk wrk; need openssl openssl; need curl curl
need python3 python3; need taskset util-linux
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores (server on core 0, client on core 1)" >&2; exit 1; }

if [ -z "${LOADGEN:-}" ]; then
  echo "## building loadgen and the minimal client (release)"
  (cd "$ROOT" && cargo build --release -p loadgen --bins --example minimal_client --quiet)
  LOADGEN=$ROOT/target/release/loadgen
fi
MINIMAL_CLIENT=${MINIMAL_CLIENT:-$(dirname "$LOADGEN")/examples/minimal_client}
[ -x "$MINIMAL_CLIENT" ] || { echo "missing $MINIMAL_CLIENT: cargo build --release -p loadgen --example minimal_client" >&2; exit 1; }
# Private copies, so a concurrent build cannot replace a binary mid-run.
cp "$LOADGEN" "$WORK/loadgen"
cp "$MINIMAL_CLIENT" "$WORK/minimal_client"
L=$WORK/loadgen
M=$WORK/minimal_client

# timed OUT CMD...: runs CMD with its output in OUT, then appends the CPU time
# it used, from getrusage (microseconds, user and system), as a last line.
timed() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
out = sys.argv[1]
with open(out, "w") as f:
    code = subprocess.run(sys.argv[2:], stdout=f, stderr=subprocess.STDOUT).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "a") as f:
    f.write(f"\nrusage user_us={round(r.ru_utime * 1e6)} system_us={round(r.ru_stime * 1e6)} "
            f"max_rss_kib={r.ru_maxrss} exit={code}\n")
PY
}

# ------------------------------------------------------------- JWT policy ----
# An RS256 key made here, published inline as a JWKS, so the embedded lab
# verifies a token signed outside it (as haproxy's jwt_verify does in peers.sh).
openssl genrsa -out "$WORK/jwt.key" 2048 2>/dev/null
MODULUS=$(openssl rsa -in "$WORK/jwt.key" -noout -modulus | cut -d= -f2)
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
N=$(printf '%s' "$MODULUS" | python3 -c 'import sys,binascii; sys.stdout.buffer.write(binascii.unhexlify(sys.stdin.read().strip()))' | b64url)
JWKS="{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"RS256\",\"use\":\"sig\",\"kid\":\"bench\",\"n\":\"$N\",\"e\":\"AQAB\"}]}"
JH=$(printf '{"alg":"RS256","typ":"JWT","kid":"bench"}' | b64url)
JP=$(printf '{"iss":"bench-issuer","sub":"productpage","aud":"bookinfo","iat":1700000000,"exp":4102444800}' | b64url)
JS=$(printf '%s.%s' "$JH" "$JP" | openssl dgst -sha256 -sign "$WORK/jwt.key" | b64url)
TOKEN="$JH.$JP.$JS"
cat > "$WORK/jwt.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: details-jwt
  namespace: default
spec:
  selector:
    matchLabels:
      app: details
  jwtRules:
  - issuer: bench-issuer
    jwks: '$JWKS'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: details-require-jwt
  namespace: default
spec:
  selector:
    matchLabels:
      app: details
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["bench-issuer/productpage"]
EOF

# ---------------------------------------------------------------- meshlab ----
URL=http://details:9080/details/0
mesh() {  # mesh NAME CONNS [loadgen args...]
  local name=$1 c=$2; shift 2
  "$L" load "$URL" --as productpage --qps 0 -c "$c" -t "$DUR" --warmup 1s --no-progress \
    --label "$name" --json "$WORK/mesh.$name.c$c.json" "$@" > "$WORK/mesh.$name.c$c.txt" 2>&1 \
    || { echo "loadgen failed for $name c$c:" >&2; cat "$WORK/mesh.$name.c$c.txt" >&2; exit 1; }
}
echo "## functional checks"
# Each policy must allow and deny as its name states before it is timed.
"$L" load "$URL" --as reviews --apply "$ROOT/bench/authz-details.yaml" --qps 0 -c 1 -n 5 \
  --no-progress --fail-if 'errors<5' > "$WORK/check.authz.txt" 2>&1 \
  || { echo "authz check failed: reviews was not denied" >&2; cat "$WORK/check.authz.txt" >&2; exit 1; }
"$L" load "$URL" --as productpage --apply "$WORK/jwt.yaml" --qps 0 -c 1 -n 5 \
  --no-progress --fail-if 'errors<5' > "$WORK/check.jwt.txt" 2>&1 \
  || { echo "JWT check failed: a request without a token was not denied" >&2; cat "$WORK/check.jwt.txt" >&2; exit 1; }
"$L" load "$URL" --as productpage --apply "$WORK/jwt.yaml" -H "Authorization: Bearer $TOKEN" \
  --qps 0 -c 1 -n 5 --no-progress --fail-if 'errors>0' > "$WORK/check.jwt-ok.txt" 2>&1 \
  || { echo "JWT check failed: a valid token was denied" >&2; cat "$WORK/check.jwt-ok.txt" >&2; exit 1; }
echo "  authz denies reviews, JWT policy denies no token and accepts the bench token: ok"

echo "## meshlab: loadgen --as productpage, ${DUR} per cell"
for c in 16 1; do
  mesh plaintext  "$c" --raw
  mesh mtls       "$c"
  mesh mtls-authz "$c" --apply "$ROOT/bench/authz-details.yaml"
  mesh mtls-jwt   "$c" --apply "$WORK/jwt.yaml" -H "Authorization: Bearer $TOKEN"
done
mesh mtls-fullhs-per-req  1 --new-connection
mesh mtls-resumed-per-req 1 --new-connection --resume

# ------------------------------------------------------------------ peers ----
echo "## nginx and haproxy mTLS sidecar pairs (bench/peers.sh)"
DUR=$DUR bash "$ROOT/bench/peers.sh" > "$WORK/peers.txt" 2>&1 \
  || { echo "peers.sh failed:" >&2; cat "$WORK/peers.txt" >&2; exit 1; }

# --------------------------------------------------------- loadgen vs wrk ----
echo "## loadgen against wrk on a plaintext nginx"
for port in 18180; do
  if ss -ltnH "sport = :$port" | grep -q .; then echo "port $port busy, aborting" >&2; exit 1; fi
done
mkdir -p "$WORK/ngx/tmp"
cat > "$WORK/ngx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $WORK/ngx/nginx.pid; error_log $WORK/ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/ngx/tmp/body; proxy_temp_path $WORK/ngx/tmp/proxy;
  fastcgi_temp_path $WORK/ngx/tmp/fcgi; uwsgi_temp_path $WORK/ngx/tmp/uwsgi; scgi_temp_path $WORK/ngx/tmp/scgi;
  keepalive_requests 10000000; keepalive_timeout 60s;
  server { listen 127.0.0.1:18180 backlog=4096;
    location / { default_type application/json; return 200 '{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}'; } }
}
EOF
taskset -c 0 nginx -e "$WORK/ngx/start.err" -p "$WORK/ngx" -c "$WORK/ngx/nginx.conf" > "$WORK/ngx/out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ss -ltnH "sport = :18180" | grep -q . && break; sleep 0.1; done
ss -ltnH "sport = :18180" | grep -q . || { echo "nginx on :18180 did not come up" >&2; exit 1; }
TARGET=http://127.0.0.1:18180/details/0
wrk -t1 -c4 -d1s "$TARGET" > /dev/null 2>&1 || true
# Five alternating rounds, so drift in the machine's load hits both tools;
# the report takes the median of each. Core 0 is the server's; a client on
# core 0 shares it, a client on core 1 has its own.
for round in 1 2 3 4 5; do
  for core in 0 1; do
    for c in 16 1; do
      timed "$WORK/wrk.core$core.c$c.r$round.txt" taskset -c "$core" \
        wrk -t1 -c"$c" -d"$DUR" --latency "$TARGET"
      timed "$WORK/lg.core$core.c$c.r$round.txt" taskset -c "$core" \
        "$L" load "$TARGET" --qps 0 -c "$c" -t "$DUR" --no-progress --label "loadgen c$c"
    done
  done
done
echo "## loadgen memory with 1000 connections"
timed "$WORK/lg.c1000.txt" "$L" load "$TARGET" --qps 0 -c 1000 -n 50000 --no-progress --label "loadgen c1000"
echo "## loadgen CPU at 1000 qps against the minimal client (3 x 2 x 10 s)"
for round in 1 2 3; do
  taskset -c 1 "$M" 127.0.0.1:18180 /details/0 1000 4 10 > "$WORK/min.1000qps.r$round.json" 2>&1 || true
  taskset -c 1 "$L" load "$TARGET" --qps 1000 -c 4 -t 10s --no-progress --label "loadgen 1000 qps" \
    --json "$WORK/lg.1000qps.r$round.json" > "$WORK/lg.1000qps.r$round.txt" 2>&1 || true
done

# ----------------------------------------------------------------- report ----
echo "## writing $OUT"
CPU_MODEL=$(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs)
python3 - "$WORK" "$OUT" "$DUR" "$COMMAND_LINE" "$(nproc)" "$CPU_MODEL" "$(uname -sr)" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, re, sys
work, out, dur, command, cores, cpu, kernel, date, load = sys.argv[1:10]

def run(path):
    with open(path) as f:
        return json.load(f)["runs"][0]

def total(r, key="p50_us"):
    return r["latency"]["total"][key]

def cpu_per_request(r):
    cpu = r.get("process_cpu_us")
    return cpu / r["sent"] if cpu is not None and r["sent"] else float("nan")

mesh = {}
for name in ["plaintext", "mtls", "mtls-authz", "mtls-jwt"]:
    for c in (16, 1):
        mesh[(name, c)] = run(f"{work}/mesh.{name}.c{c}.json")
for name in ["mtls-fullhs-per-req", "mtls-resumed-per-req"]:
    mesh[(name, 1)] = run(f"{work}/mesh.{name}.c1.json")

# peers.sh table: scenario conn req/s p50 p90 p99 mesh_cpu up_cpu bad
peers = {}
peers_text = open(f"{work}/peers.txt").read()
for line in peers_text.splitlines():
    fields = line.split()
    if len(fields) == 9 and fields[1].isdigit():
        try:
            peers[(fields[0], int(fields[1]))] = {
                "rps": float(fields[2]), "p50": float(fields[3]), "p90": float(fields[4]),
                "p99": float(fields[5]), "cpu": float(fields[6]) if fields[6] != "nan" else float("nan"),
                "bad": fields[8]}
        except ValueError:
            pass

def client_run(path):
    """One wrk or loadgen run: req/s, requests and CPU from `timed`."""
    text = open(path).read()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text) or re.search(r"requests in [\d.]+ s: ([\d.]+) qps", text)
    count = re.search(r"(\d+) requests in", text)
    usage = re.search(r"rusage user_us=(\d+) system_us=(\d+)", text)
    if not (rate and count and usage) or int(count.group(1)) == 0:
        return {"rps": float("nan"), "cpu": float("nan"), "user": float("nan")}
    n = int(count.group(1))
    user, system = int(usage.group(1)), int(usage.group(2))
    return {"rps": float(rate.group(1)), "cpu": (user + system) / n, "user": user / n}

def median_by_rps(runs):
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[len(ordered) // 2], [r["rps"] for r in ordered]

lines = []
w = lines.append
w("# Benchmarks")
w("")
w("Measured by `bench/run.sh` in one run on one machine, so the figures below")
w("compare as ratios; absolute numbers depend on the machine and its load.")
w("")
w(f"- date: {date}")
w(f"- machine: {cores} cores, {cpu}, {kernel}; load average at the end: {load}")
w(f"- command: `{command}` (from the repository root)")
w(f"- each cell runs {dur}, closed loop (as fast as responses come back), one")
w("  client thread (`wrk -t1`, `loadgen --threads 1`); meshlab cells warm up for 1 s first")
w("- single cells are noisy on a shared machine (other processes compete for the")
w("  same cores), so a verdict near its limit can flip between runs; a larger")
w("  `DUR` steadies the figures")
w("")

def ok(flag):
    return "met" if flag else "NOT met"

plain16, mtls16 = mesh[("plaintext", 16)], mesh[("mtls", 16)]
plain1, authz1 = mesh[("plaintext", 1)], mesh[("mtls-authz", 1)]
full1 = mesh[("mtls-fullhs-per-req", 1)]
ratio_tput = mtls16["achieved_qps"] / plain16["achieved_qps"]
hs_p50 = full1["latency"]["tls_handshake"]["p50_us"]
mesh_added = total(authz1) - total(plain1)
nginx_plain1 = peers.get(("direct", 1), {}).get("p50", float("nan"))
nginx_authz1 = peers.get(("nginx-pair-mtls-authz", 1), {}).get("p50", float("nan"))
nginx_added = nginx_authz1 - nginx_plain1
mesh_cpu_added = cpu_per_request(mesh[("mtls-authz", 16)]) - cpu_per_request(plain16)
nginx_cpu = peers.get(("nginx-pair-mtls-authz", 16), {}).get("cpu", float("nan"))
nginx_full = peers.get(("nginx-mtls-fullhs-per-req", 1), {}).get("p50", float("nan"))
mesh_full = total(full1)
clients = {}
for tool in ("wrk", "lg"):
    for core in (0, 1):
        for c in (16, 1):
            clients[(tool, core, c)] = median_by_rps(
                [client_run(f"{work}/{tool}.core{core}.c{c}.r{i}.txt") for i in range(1, 6)])
shared = {c: (clients[("lg", 0, c)][0], clients[("wrk", 0, c)][0]) for c in (16, 1)}
loadgen_wins = all(lg["rps"] >= wr["rps"] for lg, wr in shared.values())

# 1000 qps: each round runs the minimal client, then the loadgen, so a
# round's difference is taken under the same machine load.
def core_share(cpu_us, elapsed_us):
    return cpu_us / elapsed_us * 100 if cpu_us is not None and elapsed_us else float("nan")
paced = []
for i in (1, 2, 3):
    minimal = json.loads(open(f"{work}/min.1000qps.r{i}.json").read().strip().splitlines()[-1])
    lg = run(f"{work}/lg.1000qps.r{i}.json")
    paced.append({
        "loadgen": core_share(lg["process_cpu_us"], lg["elapsed_us"]),
        "user": core_share(lg.get("process_user_cpu_us"), lg["elapsed_us"]),
        "minimal": core_share(minimal["cpu_us"], minimal["elapsed_us"]),
        "run": lg,
    })
for p in paced:
    p["overhead"] = p["loadgen"] - p["minimal"]
paced_median = sorted(paced, key=lambda p: p["overhead"])[1]
lg1000 = paced_median["run"]

w("## Targets")
w("")
w("| target | measured | verdict |")
w("|---|---|---|")
w(f"| mTLS keeps >= 90% of plaintext throughput on kept connections (16 connections) | {mtls16['achieved_qps']:.0f} vs {plain16['achieved_qps']:.0f} req/s = {ratio_tput*100:.1f}% | {ok(ratio_tput >= 0.9)} |")
w(f"| full mutual TLS 1.3 handshake p50 < 0.6 ms on loopback, client view | {hs_p50} µs | {ok(hs_p50 < 600)} |")
w(f"| mTLS + authz hop adds < half of the nginx pair's added p50 (1 connection) | meshlab +{mesh_added} µs, nginx pair +{nginx_added:.0f} µs | {ok(mesh_added < nginx_added / 2)} |")
w(f"| mTLS + authz uses less CPU per request than the nginx pair (16 connections) | meshlab +{mesh_cpu_added:.1f} µs, nginx pair {nginx_cpu:.1f} µs | {ok(mesh_cpu_added < nginx_cpu)} |")
w(f"| a full handshake per request costs < half of nginx's (request p50, 1 connection) | meshlab {mesh_full} µs, nginx pair {nginx_full:.0f} µs | {ok(mesh_full < nginx_full / 2)} |")
w(f"| loadgen >= wrk requests/s, same target and connections (client on the server's core) | 16 conns: {shared[16][0]['rps']:.0f} vs {shared[16][1]['rps']:.0f}; 1 conn: {shared[1][0]['rps']:.0f} vs {shared[1][1]['rps']:.0f} | {ok(loadgen_wins)} |")
w(f"| loadgen's own overhead at 1000 qps < 1% of one core (CPU above a minimal epoll client's, same schedule) | {paced_median['overhead']:.2f}% ({paced_median['loadgen']:.2f}% vs {paced_median['minimal']:.2f}%) | {ok(paced_median['overhead'] < 1.0)} |")
w("")
w("How the figures are taken:")
w("")
w("- meshlab's added p50 is `mtls-authz` minus `plaintext` at 1 connection, both")
w("  from productpage's address to details through the embedded lab; the nginx")
w("  pair's is `nginx-pair-mtls-authz` minus `direct` from peers.sh.")
w("- meshlab's added CPU is the loadgen process's CPU per request (client, both")
w("  sidecars and the details app in one process) with mTLS + authz minus the")
w("  same in plaintext; the nginx pair's is both nginx processes' CPU per request.")
w("- a full handshake per request: total request time with a new connection and")
w("  a full mutual TLS 1.3 handshake for each request (meshlab) against wrk")
w("  through the nginx pair with no pooling and no session reuse.")
w("")

w("## meshlab, productpage -> details")
w("")
w("`loadgen load http://details:9080/details/0 --as productpage --qps 0 -c C` (latency in µs;")
w("CPU per request covers the whole process: loadgen, both sidecars and the app).")
w("")
w("| path | conns | req/s | p50 | p90 | p99 | p99.9 | TLS handshake p50 | authn p50 | authz p50 | CPU/req | errors |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, c), r in mesh.items():
    t = r["latency"]["total"]
    hs = r["latency"].get("tls_handshake", {})
    authn = r["latency"].get("authn", {})
    authz = r["latency"].get("authz", {})
    def p50(s):
        return str(s.get("p50_us")) if s.get("count") else "-"
    w(f"| {name} | {c} | {r['achieved_qps']:.0f} | {t['p50_us']} | {t['p90_us']} | {t['p99_us']} | {t['p999_us']} | {p50(hs)} | {p50(authn)} | {p50(authz)} | {cpu_per_request(r):.1f} | {r['errors']} |")
w("")
w("Sidecar times (authn, authz) come from `Server-Timing` and are recorded in")
w("whole microseconds, so values under 1 µs read as 1.")
w("")

w("## loadgen against wrk")
w("")
w("Plaintext nginx (one worker, pinned to core 0) on 127.0.0.1:18180, `wrk -t1 -cC`")
w("against `loadgen load --qps 0 -c C` (one thread by default); medians of five")
w("alternating rounds. CPU per request is user plus system time from getrusage.")
w("")
w("With the client on the server's core, the two processes take turns on one")
w("core and the rate depends only on the CPU each spends per request: that row")
w("compares the tools. With the client on its own core, a request waits for two")
w("cross-core wake-ups, whose cost on a shared virtual machine swings by 10-20%")
w("between rounds and hides the tools' difference; the row is there for reference.")
w("")
w("| client core | connections | wrk req/s | loadgen req/s | loadgen / wrk | wrk CPU/req µs | loadgen CPU/req µs | loadgen user CPU/req µs |")
w("|---|---|---|---|---|---|---|---|")
for core, where in ((0, "server's (0)"), (1, "own (1)")):
    for c in (16, 1):
        lg, wr = clients[("lg", core, c)][0], clients[("wrk", core, c)][0]
        w(f"| {where} | {c} | {wr['rps']:.0f} | {lg['rps']:.0f} | {lg['rps']/wr['rps']*100:.0f}% | {wr['cpu']:.2f} | {lg['cpu']:.2f} | {lg['user']:.2f} |")
w("")
w("All rounds, req/s (sorted): " + "; ".join(
    f"core {core}, {c} conns: wrk {', '.join(f'{x:.0f}' for x in clients[('wrk', core, c)][1])}, "
    f"loadgen {', '.join(f'{x:.0f}' for x in clients[('lg', core, c)][1])}"
    for core in (0, 1) for c in (16, 1)))
w("")
w("### The loadgen's own CPU at 1000 qps")
w("")
w("Open loop, 1000 requests/s over 4 connections for 10 s, client on core 1,")
w("three alternating rounds. Each request costs any client a send, a receive,")
w("two wake-ups and, on loopback, much of the server's TCP receive path in the")
w("sender's system time. `loadgen/examples/minimal_client.rs` pays exactly")
w("that: one epoll loop (mio) over the same connections on the same schedule,")
w("with no runtime, histograms or per-request timeouts. The loadgen's own overhead is its")
w("CPU above the minimal client's in the same round (the process CPU clock,")
w("to the microsecond).")
w("")
w("| round | loadgen, % of one core | of which user space | minimal client | loadgen's own overhead |")
w("|---|---|---|---|---|")
for i, p in enumerate(paced, 1):
    w(f"| {i} | {p['loadgen']:.2f}% | {p['user']:.2f}% | {p['minimal']:.2f}% | {p['overhead']:.2f}% |")
w("")
w(f"In the median round the loadgen's corrected p99 was {lg1000['corrected_total']['p99_us']} µs against")
w(f"{total(lg1000, 'p99_us')} µs uncorrected.")
w("")
c1000 = open(f"{work}/lg.c1000.txt").read()
rss = re.search(r"max_rss_kib=(\d+)", c1000)
rate = re.search(r"(\d+) requests in [\d.]+ s: ([\d.]+) qps, (\d+) errors", c1000)
if rss and rate:
    w(f"With 1000 connections (`-c 1000 -n 50000`, closed loop) the loadgen peaked at")
    w(f"{int(rss.group(1)) / 1024:.1f} MiB resident and sent {float(rate.group(2)):.0f} requests/s with {rate.group(3)} errors:")
    w("every connection shares one set of histograms.")
    w("")

w("## Peers: nginx and haproxy mTLS sidecar pairs")
w("")
w("Output of `bench/peers.sh` from the same run (latency in µs; mesh_cpu is both")
w("sidecars' CPU per request):")
w("")
w("```")
w(peers_text.rstrip())
w("```")
w("")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
PY
echo "## done: $OUT"

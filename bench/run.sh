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
#      --threads 1, same connections, on a plaintext nginx (:18180).
#   4. the loadgen's own CPU at 1000 qps (utime+stime from /proc) on that nginx.
#
# Usage:  bash bench/run.sh                 (DUR=5s per cell, about 6 minutes)
#         DUR=10s bash bench/run.sh         (steadier figures, about 11 minutes)
#         LOADGEN=path bash bench/run.sh    (use a built binary, skip cargo build)
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
need python3 python3

if [ -z "${LOADGEN:-}" ]; then
  echo "## building loadgen (release)"
  (cd "$ROOT" && cargo build --release -p loadgen --quiet)
  LOADGEN=$ROOT/target/release/loadgen
fi
# A private copy, so a concurrent build cannot replace the binary mid-run.
cp "$LOADGEN" "$WORK/loadgen"
L=$WORK/loadgen

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
nginx -e "$WORK/ngx/start.err" -p "$WORK/ngx" -c "$WORK/ngx/nginx.conf" > "$WORK/ngx/out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do ss -ltnH "sport = :18180" | grep -q . && break; sleep 0.1; done
ss -ltnH "sport = :18180" | grep -q . || { echo "nginx on :18180 did not come up" >&2; exit 1; }
TARGET=http://127.0.0.1:18180/details/0
wrk -t1 -c4 -d1s "$TARGET" > /dev/null 2>&1 || true
# Three alternating rounds, so drift in the machine's load hits both tools;
# the report takes the median of each.
for round in 1 2 3; do
  for c in 16 1; do
    wrk -t1 -c"$c" -d"$DUR" --latency "$TARGET" > "$WORK/wrk.c$c.r$round.txt" 2>&1 || true
    "$L" load "$TARGET" --qps 0 -c "$c" -t "$DUR" --no-progress --label "loadgen c$c" \
      --json "$WORK/lg.c$c.r$round.json" > "$WORK/lg.c$c.r$round.txt" 2>&1 || true
  done
done
echo "## loadgen CPU at 1000 qps (10 s)"
"$L" load "$TARGET" --qps 1000 -c 4 -t 10s --no-progress --label "loadgen 1000 qps" \
  --json "$WORK/lg.1000qps.json" > "$WORK/lg.1000qps.txt" 2>&1 || true

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

def wrk_rps(path):
    m = re.search(r"Requests/sec:\s+([\d.]+)", open(path).read())
    return float(m.group(1)) if m else float("nan")

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
def median_run(c):
    runs = sorted((run(f"{work}/lg.c{c}.r{i}.json") for i in (1, 2, 3)), key=lambda r: r["achieved_qps"])
    return runs[1], [r["achieved_qps"] for r in runs]
def median_wrk(c):
    rates = sorted(wrk_rps(f"{work}/wrk.c{c}.r{i}.txt") for i in (1, 2, 3))
    return rates[1], rates
lg16, lg16_all = median_run(16)
lg1, lg1_all = median_run(1)
wrk16, wrk16_all = median_wrk(16)
wrk1, wrk1_all = median_wrk(1)
lg1000 = run(f"{work}/lg.1000qps.json")
def core_share(r, key):
    return r[key] / r["elapsed_us"] * 100 if r.get(key) is not None else float("nan")
lg_core = core_share(lg1000, "process_cpu_us")
lg_user = core_share(lg1000, "process_user_cpu_us")

w("## Targets")
w("")
w("| target | measured | verdict |")
w("|---|---|---|")
w(f"| mTLS keeps >= 90% of plaintext throughput on kept connections (16 connections) | {mtls16['achieved_qps']:.0f} vs {plain16['achieved_qps']:.0f} req/s = {ratio_tput*100:.1f}% | {ok(ratio_tput >= 0.9)} |")
w(f"| full mutual TLS 1.3 handshake p50 < 0.6 ms on loopback, client view | {hs_p50} µs | {ok(hs_p50 < 600)} |")
w(f"| mTLS + authz hop adds < half of the nginx pair's added p50 (1 connection) | meshlab +{mesh_added} µs, nginx pair +{nginx_added:.0f} µs | {ok(mesh_added < nginx_added / 2)} |")
w(f"| mTLS + authz uses less CPU per request than the nginx pair (16 connections) | meshlab +{mesh_cpu_added:.1f} µs, nginx pair {nginx_cpu:.1f} µs | {ok(mesh_cpu_added < nginx_cpu)} |")
w(f"| a full handshake per request costs < half of nginx's (request p50, 1 connection) | meshlab {mesh_full} µs, nginx pair {nginx_full:.0f} µs | {ok(mesh_full < nginx_full / 2)} |")
w(f"| loadgen >= wrk requests/s, same target and connections | 16 conns: {lg16['achieved_qps']:.0f} vs {wrk16:.0f}; 1 conn: {lg1['achieved_qps']:.0f} vs {wrk1:.0f} | {ok(lg16['achieved_qps'] >= wrk16 and lg1['achieved_qps'] >= wrk1)} |")
w(f"| loadgen overhead at 1000 qps < 1% of one core | {lg_core:.2f}% of which {lg_user:.2f}% user space ({lg1000['process_cpu_us']/1000:.0f} ms CPU in {lg1000['elapsed_us']/1e6:.1f} s; /proc has 10 ms resolution) | {ok(lg_core < 1.0)} |")
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
w("Plaintext nginx (one worker) on 127.0.0.1:18180, `wrk -t1 -cC` against")
w("`loadgen load --qps 0 -c C` (one thread by default); medians of three alternating")
w("rounds. With 16 connections both tools are close to what one nginx worker serves")
w("on this machine, so that row compares the tools less than the 1-connection row.")
w("")
w("| connections | wrk req/s | loadgen req/s | loadgen / wrk | loadgen p50 µs | loadgen p99 µs |")
w("|---|---|---|---|---|---|")
for c, lg, wr in [(16, lg16, wrk16), (1, lg1, wrk1)]:
    w(f"| {c} | {wr:.0f} | {lg['achieved_qps']:.0f} | {lg['achieved_qps']/wr*100:.0f}% | {total(lg)} | {total(lg, 'p99_us')} |")
w("")
w("All rounds, req/s: " + "; ".join(
    f"{c} conns wrk {', '.join(f'{x:.0f}' for x in wa)}, loadgen {', '.join(f'{x:.0f}' for x in la)}"
    for c, wa, la in [(16, wrk16_all, lg16_all), (1, wrk1_all, lg1_all)]))
w("")
w(f"At 1000 qps open loop (4 connections, 10 s) the loadgen used {lg_core:.2f}% of one core,")
w(f"{lg_user:.2f}% in user space and the rest in the kernel, where loopback TCP also")
w("runs much of the receiving end's network stack in the sender's system time;")
w(f"its corrected p99 was {lg1000['corrected_total']['p99_us']} µs against {total(lg1000, 'p99_us')} µs uncorrected.")
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

#!/usr/bin/env bash
# bench/bench_load.sh: the initial load. `polegate load` of a generated ATX corpus (N
# messages) into an athena polegated, and of the same records as NX5 documents (M)
# into a niche one, each on to the local Kafka broker (until the daemon has published
# everything: SIGTERM, drained), next to `polegate translate --to json` of the same
# files in the same run (decode + ledger, no intake, no fsync, no broker). Prints the
# rates and their ratios, and the load average before and after (a shared machine).
#
#   bench/bench_load.sh [N_ATX [N_NX5]]   defaults 1000000 and 100000; needs a build
#                                          ($POLEGATE_BUILD_DIR, default build/)
#
# Not a ctest: it takes minutes. The stores and corpora go in a temporary folder under
# $TMPDIR (/tmp); about 1.5 GB of corpus for a million ATX messages.
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"

n_atx=${1:-1000000}
n_nx5=${2:-100000}
build=${POLEGATE_BUILD_DIR:-$PG_ROOT/build}
polegate=$build/cli/polegate
[ -x "$polegate" ] && [ -x "$build/gateway/polegated" ] && [ -x "$build/bench/bench_translate" ] ||
    pg_die "no build in $build: run scripts/build"
work=$(mktemp -d "${TMPDIR:-/tmp}/polegate-bench-load.XXXXXX")
daemon_pid=

s_cleanup() {
    local rc=$?
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    "$PG_ROOT/scripts/kafka-local" stop --owner-file "$work/broker.owner" >/dev/null 2>&1 || true
    [ $rc -ne 0 ] && [ -s "$work/polegated.log" ] && tail -n 20 "$work/polegated.log" >&2
    rm -rf "$work"
    exit $rc
}
trap s_cleanup EXIT

s_now() { date +%s.%N; }
s_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
s_rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
s_load_avg() { cut -d' ' -f1-3 /proc/loadavg; }

"$PG_ROOT/scripts/kafka-local" start --owner-file "$work/broker.owner"
load_before=$(s_load_avg)

# The corpora: the ATX one, and enough records again for n_nx5 NX5 documents (the
# generator leaves out the few the NX5 encoder cannot carry).
# (bench_translate writes them before it measures; a corpus message its decoder
# rejects fails the measurement, not the corpus.)
"$build/bench/bench_translate" --records "$n_atx" --rounds 1 --write-corpus "$work/atx.ndjson" \
    >"$work/gen-atx.txt" 2>&1 || [ -s "$work/atx.ndjson" ] || pg_die "no ATX corpus"
"$build/bench/bench_translate" --records $((n_nx5 * 105 / 100)) --rounds 1 \
    --write-nx5 "$work/all.xml" >"$work/gen-nx5.txt" 2>&1 || [ -s "$work/all.xml" ] ||
    pg_die "no NX5 corpus"
# Exactly n_nx5 documents: cut before the (n_nx5 + 1)-th declaration.
awk -v n="$n_nx5" '/^<\?xml/ { if (++d > n) exit } { print }' "$work/all.xml" >"$work/nx5.xml"
rm -f "$work/all.xml"
docs=$(grep -c '^<?xml' "$work/nx5.xml")

# s_translate FORMAT FILE: seconds of `polegate translate --to json` over FILE.
s_translate() {
    local t0 t1
    t0=$(s_now)
    "$polegate" translate --from "$1" --to json "$2" >/dev/null
    t1=$(s_now)
    s_secs "$t0" "$t1"
}

# s_load ADAPTER FILE: start a polegated, load FILE, stop it once all is published.
# Prints "acked_s published_s records".
s_load() {
    local adapter=$1 file=$2 topic port store t0 t1 t2
    topic=pg-bench-load-$adapter-$(date +%s)-$$
    "$build/bench/bench_e2e" create --brokers "$PG_KAFKA_BROKERS" --topic "$topic" --partitions 3 \
        >/dev/null
    store=$(mktemp -d "$work/store.XXXXXX")
    port=$(pg_free_port)
    cat >"$work/bench.yaml" <<EOF
force: {code: ESX}
adapter: {name: $adapter}
intake: {endpoint: 'tcp://127.0.0.1:$port'}
curve: {insecure: true}  # the bench measures the load; CURVE is tested in tests/
store: {path: '$store', map_size: 32GiB}
spool: {drain_timeout_ms: 600000}
kafka: {brokers: '$PG_KAFKA_BROKERS'}
log: {level: info}
policy:
  version: BENCH-1
  agreements: [{name: ISA-BENCH, description: bench}]
  destinations:
    - {name: national, kind: national, topic: $topic, agreement: ISA-BENCH,
       max_classification: OFFICIAL-SENSITIVE, kinds: all}
EOF
    pg_start_polegated "$build/gateway/polegated" "$work/bench.yaml" "$work/polegated.log" "$port"
    t0=$(s_now)
    "$polegate" load --to "tcp://127.0.0.1:$port" --no-progress --state "$work/$adapter.state" \
        --rejects "$work/$adapter.rejects" "$file" >"$work/$adapter.summary" 2>"$work/$adapter.log" ||
        [ $? -eq 1 ] || pg_die "polegate load failed: $(tail -n 3 "$work/$adapter.log")"
    t1=$(s_now)
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || pg_die "polegated exited with status $? after the run"
    daemon_pid=
    t2=$(s_now)
    local records
    records=$(sed -n 's/.*stopped: .*kafka \([0-9]*\) records in.*/\1/p' "$work/polegated.log" | tail -n 1)
    rm -rf "$store"
    echo "$(s_secs "$t0" "$t1") $(s_secs "$t0" "$t2") ${records:-0}"
}

tr_atx=$(s_translate atx "$work/atx.ndjson")
s_load athena "$work/atx.ndjson" >"$work/atx.result"
read -r ld_atx pub_atx rec_atx <"$work/atx.result"
tr_nx5=$(s_translate nx5 "$work/nx5.xml")
s_load niche "$work/nx5.xml" >"$work/nx5.result"
read -r ld_nx5 pub_nx5 rec_nx5 <"$work/nx5.result"
load_after=$(s_load_avg)

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf 'bench_load: %s cores (%s), load average %s before, %s after; store on %s; %s\n' \
    "$(nproc)" "$cpu" "$load_before" "$load_after" \
    "$(df --output=source,fstype "$work" | tail -n 1 | tr -s ' ')" "$(date -u +%F)"
printf '  corpora: %s ATX messages (%s MB), %s NX5 documents (%s MB)\n' "$n_atx" \
    "$(($(stat -c %s "$work/atx.ndjson") / 1000000))" "$docs" \
    "$(($(stat -c %s "$work/nx5.xml") / 1000000))"
for f in atx nx5; do
    n=$n_atx tr=$tr_atx ld=$ld_atx pub=$pub_atx rec=$rec_atx
    [ "$f" = nx5 ] && n=$docs tr=$tr_nx5 ld=$ld_nx5 pub=$pub_nx5 rec=$rec_nx5
    printf '  %s: translate --to json %s s (%s msg/s); load acked %s s (%s msg/s), all %s records in Kafka after %s s (%s msg/s); load/translate %s\n' \
        "$f" "$tr" "$(s_rate "$n" "$tr")" "$ld" "$(s_rate "$n" "$ld")" "$rec" "$pub" \
        "$(s_rate "$n" "$pub")" "$(awk -v a="$tr" -v b="$pub" 'BEGIN { printf "%.2f", a / b }')"
    sed -n '$p' "$work/$([ "$f" = atx ] && echo athena || echo niche).summary" | sed 's/^/    /'
done

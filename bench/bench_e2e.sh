#!/usr/bin/env bash
# bench/bench_e2e.sh: polegated end to end (N ATX/2 messages over ZeroMQ, until the
# broker has stored every record they produce) next to the raw librdkafka producer
# sending the same records (same keys, values and headers, same producer settings)
# to the same broker in the same run. Prints both rates and their ratio.
#
#   bench/bench_e2e.sh [N]     N messages, default 50000; needs a build
#                              ($POLEGATE_BUILD_DIR, default build/: scripts/build)
#
# polegated's LMDB store goes in a temporary folder under $TMPDIR (/tmp), or under
# $POLEGATE_BENCH_STORE_IN (e.g. /dev/shm, to see what fdatasync costs).
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"

n=${1:-50000}
build=${POLEGATE_BUILD_DIR:-$PG_ROOT/build}
bench=$build/bench/bench_e2e
[ -x "$bench" ] && [ -x "$build/gateway/polegated" ] || pg_die "no build in $build: run scripts/build"
work=$(mktemp -d "${TMPDIR:-/tmp}/polegate-bench.XXXXXX")
daemon_pid=

s_cleanup() {
    local rc=$?
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    "$PG_ROOT/scripts/kafka-local" stop --owner-file "$work/broker.owner" >/dev/null 2>&1 || true
    [ $rc -ne 0 ] && [ -s "$work/polegated.log" ] && tail -n 20 "$work/polegated.log" >&2
    rm -rf "$work" "${store:-}"
    exit $rc
}
trap s_cleanup EXIT

"$PG_ROOT/scripts/kafka-local" start --owner-file "$work/broker.owner"
python3 "$PG_ROOT/bench/bench_e2e.py" "$n" "$work/corpus.ndjson"
topic=pg-bench-e2e-$(date +%s)-$$
"$bench" create --brokers "$PG_KAFKA_BROKERS" --topic "$topic" --partitions 3

store=$(mktemp -d "${POLEGATE_BENCH_STORE_IN:-$work}/polegate-bench-store.XXXXXX")
port=$(pg_free_port)
cat >"$work/bench.yaml" <<EOF
force:
  code: ESX
adapter:
  name: athena
intake:
  endpoint: tcp://127.0.0.1:$port
curve:
  insecure: true  # the bench measures the pipeline; CURVE is tested in tests/
store:
  path: $store
  map_size: 4GiB
kafka:
  brokers: $PG_KAFKA_BROKERS
log:
  level: info
policy:
  version: BENCH-1
  agreements: [{name: ISA-BENCH, description: bench}]
  destinations:
    - {name: national, kind: national, topic: $topic, agreement: ISA-BENCH,
       max_classification: OFFICIAL-SENSITIVE, kinds: all}
EOF
pg_start_polegated "$build/gateway/polegated" "$work/bench.yaml" "$work/polegated.log" "$port"

e2e=$("$bench" send --endpoint "tcp://127.0.0.1:$port" --brokers "$PG_KAFKA_BROKERS" \
    --topic "$topic" "$work/corpus.ndjson")
kill -TERM "$daemon_pid"
wait "$daemon_pid" || pg_die "polegated exited with status $? after the run"
daemon_pid=
# The raw run lasts well under a second, so it is noisy: three runs, the median counts.
raws=()
for i in 1 2 3; do
    raws+=("$("$bench" raw --brokers "$PG_KAFKA_BROKERS" --from "$topic" --to "$topic-raw$i")")
done
raw=$(printf '%s\n' "${raws[@]}" | sort -t= -k7 -n | sed -n 2p)

# key=value fields of one result line
s_field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }

e2e_rps=$(s_field "$e2e" records_per_s)
raw_rps=$(s_field "$raw" records_per_s)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf 'bench_e2e: %s cores (%s), store on %s, Apache Kafka %s on 127.0.0.1, librdkafka %s, %s\n' \
    "$(nproc)" "$cpu" "$(df --output=source,fstype "$store" | tail -n 1 | tr -s ' ')" "$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' \
    "$PG_ROOT/scripts/kafka/pom.xml")" "$(pkg-config --modversion rdkafka)" "$(date -u +%F)"
printf '  polegated end to end: %s ATX messages -> %s records readable (committed) in %s s (all acked after %s s): %s msg/s, %s records/s\n' \
    "$(s_field "$e2e" messages)" "$(s_field "$e2e" records)" "$(s_field "$e2e" readable_s)" \
    "$(s_field "$e2e" acked_s)" "$(s_field "$e2e" msg_per_s)" "$e2e_rps"
printf '  raw librdkafka producer: the same %s records (%s bytes per value on average) in %s s: %s records/s (median of 3: %s)\n' \
    "$(s_field "$raw" records)" "$(s_field "$raw" avg_value_bytes)" "$(s_field "$raw" s)" "$raw_rps" \
    "$(for r in "${raws[@]}"; do s_field "$r" records_per_s; done | sort -n | paste -sd ' ')"
# How long the intake, the publisher and the rest waited for the store's one write
# transaction (the intake holds it across groups until a checkpoint).
sed -n 's/.*polegated info: stopped: .*; \(store write transactions .*\)$/  polegated: \1/p' \
    "$work/polegated.log" | tail -n 1
printf '  ratio polegated / raw producer: %s\n' "$(awk -v a="$e2e_rps" -v b="$raw_rps" 'BEGIN { printf "%.3f", a / b }')"

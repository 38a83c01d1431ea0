# scripts/common.sh: paths and helpers shared by the scripts in this folder (sourced, not run).
# Everything that outlives one run (Python venv, Kafka jars, the local broker's state)
# lives under one cache folder so a second run on the same machine is fast.

PG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CACHE=${POLEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polegate}
PG_VENV=${POLEGATE_VENV:-$PG_CACHE/venv}
PG_PYTHON=$PG_VENV/bin/python

# The local broker (scripts/kafka-local): non-default ports so it never meets a real one.
PG_KAFKA_HOST=127.0.0.1
PG_KAFKA_PORT=${POLEGATE_KAFKA_PORT:-19092}
PG_KAFKA_CONTROLLER_PORT=${POLEGATE_KAFKA_CONTROLLER_PORT:-19093}
PG_KAFKA_BROKERS=$PG_KAFKA_HOST:$PG_KAFKA_PORT

pg_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
pg_die() { pg_log "error: $*"; exit 1; }

# Run as root, or through sudo when there is one (a developer's own machine).
pg_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        pg_die "need root to run: $*"
    fi
}

# Print a free TCP port on 127.0.0.1 (the kernel picks; a race with another
# process binding it in between is possible but harmless for tests).
pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Start polegated ($1) with the config $2, its output in $3, in the background; wait (up
# to 10 s) until its intake on 127.0.0.1:$4 takes connections. Its pid in daemon_pid,
# for the caller's cleanup trap; dies if it exits first.
pg_start_polegated() {
    "$1" --config "$2" </dev/null >"$3" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 100); do
        kill -0 "$daemon_pid" 2>/dev/null || pg_die "polegated exited"
        (exec 3<>"/dev/tcp/127.0.0.1/$4") 2>/dev/null && break
        sleep 0.1
    done
}

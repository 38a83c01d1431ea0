/* polegated configuration: the config maps (every section and key, its type, default,
 * bounds and check), which parse, check and document the YAML; the reference and the
 * comparison of two configurations. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "curve.h"
#include "log.h"
#include "polegate/error.h"

/* ---------------------------------------------------------------- config maps */

static int s_check_force(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    size_t n = strlen(v);
    int ok = n >= 2 && n <= 4;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= 'A' && v[i] <= 'Z';
    if (!ok)
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is not a force code (2-4 upper-case letters, e.g. ESX)", v);
    free(cfg->force_lower);
    cfg->force_lower = strdup(v);
    if (!cfg->force_lower)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    for (char *c = cfg->force_lower; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

static int s_check_adapter(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    cfg->adapter = pg_adapter_find(v);
    if (!cfg->adapter)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s' is not an adapter (athena, niche)",
                       v);
    return 0;
}

int pg_config__check_endpoint(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    (void)cfg;
    if (!strncmp(v, "ipc://", 6) && v[6])
        return 0;
    if (!strncmp(v, "inproc://", 9) && v[9])
        return 0;
    if (!strncmp(v, "tcp://", 6)) {
        const char *colon = strrchr(v + 6, ':');
        if (colon && colon > v + 6) {
            char *end;
            errno = 0;
            long port = strtol(colon + 1, &end, 10);
            if ((colon[1] == '*' && !colon[2]) ||
                (isdigit((unsigned char)colon[1]) && !*end && !errno && port >= 1 && port <= 65535))
                return 0;
        }
    }
    return pg_errf(PG_ECONFIG, errstr, errstr_size,
                   "'%s' is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)", v);
}

static int s_check_topic(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    (void)cfg;
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 249 && strcmp(v, ".") && strcmp(v, "..");
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '_' || v[i] == '-';
    if (!ok)
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)", v);
    return 0;
}

static int s_check_fsync(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    if (!strcmp(v, "event"))
        cfg->audit_sync_every = 1;
    else if (!strcmp(v, "batch"))
        cfg->audit_sync_every = UINT_MAX;
    else
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is not an fsync mode (event: every event on disk before it "
                       "counts; batch: once per batch of records)",
                       v);
    return 0;
}

static int s_check_level(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    cfg->log_level = pg_log_level_parse(v);
    if (cfg->log_level < 0)
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is not a log level (error, warn, info, debug)", v);
    return 0;
}

static int s_check_format(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    cfg->log_format = pg_log_format_parse(v);
    if (cfg->log_format < 0)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s' is not a log format (text, json)", v);
    return 0;
}

#define S_OFF(field) offsetof(pg_config, field)

static const pg_config_entry s_force[] = {
    {PG_CONFIG_STR, "code", NULL, PG_CONFIG_REQUIRED, S_OFF(force), 0, 0, s_check_force,
     "The force's short code, 2-4 upper-case letters (ESX, MER). Messages naming "
     "another force are rejected; it is the `pg-origin-force` of what is published."},
    {0},
};

static const pg_config_entry s_adapter[] = {
    {PG_CONFIG_STR, "name", NULL, PG_CONFIG_REQUIRED, S_OFF(adapter_name), 0, 0, s_check_adapter,
     "The records system beside this gateway: `athena` (ATX/2 JSON) or `niche` (NX5 "
     "XML)."},
    {0},
};

static const pg_config_entry s_intake[] = {
    {PG_CONFIG_STR, "endpoint", "none: the drop directory only", PG_CONFIG_DERIVED,
     S_OFF(intake_endpoint), 0, 0, pg_config__check_endpoint,
     "ZeroMQ endpoint the ROUTER socket binds, e.g. `tcp://127.0.0.1:5555` "
     "(docs/intake.md). This or `directory`, or both."},
    {PG_CONFIG_SIZE, "max_message_size", "the adapter's maximum (ATX 1MiB, NX5 8MiB)",
     PG_CONFIG_DERIVED, S_OFF(intake_max_message_size), 1, 64LL << 20, NULL,
     "Largest message accepted, in bytes (suffixes K, M, G = KiB, MiB, GiB). Larger "
     "frames are rejected without being parsed. At most the adapter's maximum."},
    {PG_CONFIG_STR, "directory", "none", PG_CONFIG_DERIVED, S_OFF(intake_directory), 0, 0, NULL,
     "Drop directory: files renamed into it are taken in name order through the same path "
     "as ZeroMQ messages, each acknowledged in a result file, then moved to `done/` or "
     "`failed/` in it (docs/intake.md). It may not be `store.path`, be inside it or hold it, "
     "nor hold `audit.path`."},
    {PG_CONFIG_SIZE, "max_file_size", "1GiB", 0, S_OFF(intake_max_file_size), 1, 1LL << 40, NULL,
     "Largest file the drop directory takes; a larger one goes to `failed/` untaken."},
    {PG_CONFIG_INT, "checkpoint_ms", "100", 0, S_OFF(intake_checkpoint_ms), 1, 10000, NULL,
     "Most milliseconds the store's write transaction stays open across acknowledged "
     "groups; each group is made durable by the write-ahead log (`store.path`/wal) "
     "before its acks, and the store is committed (a checkpoint) at least this often, "
     "when the intake is idle for 2 ms, or when another writer waits "
     "(docs/reliability.md)."},
    {0},
};

static const pg_config_entry s_store[] = {
    {PG_CONFIG_STR, "path", NULL, PG_CONFIG_REQUIRED, S_OFF(store_path), 0, 0, NULL,
     "Directory of the LMDB store (ledger state); created if missing (mode 0700). Refused "
     "when group or others may write it, or a user other than the daemon's or root owns "
     "it."},
    {PG_CONFIG_SIZE, "map_size", "1GiB", 0, S_OFF(store_map_size), 1LL << 20, 1LL << 40, NULL,
     "LMDB map size: the most the store may grow to. The intake answers retry once all "
     "but an eighth of it (at least 1 MiB) is used: that rest is kept so that what was "
     "published can always be removed."},
    {PG_CONFIG_INT, "max_withdraw_percent", "25", 0, S_OFF(store_max_withdraw_percent), 0, 100,
     NULL,
     "A new policy version that would withdraw more than this percentage of the records "
     "a destination holds waits, at start-up, for the operator to run `polegate store "
     "confirm <store.path> <policy.version>` (a reload is refused until then); 100: "
     "never waits."},
    {0},
};

static const pg_config_entry s_kafka[] = {
    {PG_CONFIG_STR, "brokers", NULL, PG_CONFIG_REQUIRED, S_OFF(kafka_brokers), 0, 0, NULL,
     "Bootstrap brokers, comma-separated `host:port` (librdkafka `bootstrap.servers`)."},
    {PG_CONFIG_PROPS, "properties", "{}", 0, S_OFF(kafka_properties), 0, 0, NULL,
     "librdkafka properties passed verbatim (e.g. `linger.ms`, `security.protocol`), "
     "overriding polegate's defaults. `acks`, `enable.idempotence` and `partitioner` "
     "are fixed (all, true, murmur2_random) and may not be changed; `bootstrap.servers` "
     "is `brokers`. A secret need not sit here: `<property>_file: PATH` reads it from a "
     "file (not readable by others), `<property>_env: NAME` from the environment; an "
     "`ssl.*.location` that cannot be read is refused."},
    {0},
};

static int s_check_transport(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    (void)cfg;
    if (!strcmp(v, "zmq") || !strcmp(v, "dir"))
        return 0;
    return pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s' is not a delivery transport (zmq, dir)",
                   v);
}

static int s_check_mode(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    char *end;
    unsigned long m = strtoul(v, &end, 8);
    if (!*v || *end || m > 0777 || (m & 07))
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is not an octal file mode without bits for others (0600, 0640, "
                       "0660)",
                       v);
    cfg->delivery_file_mode = (unsigned)m;
    return 0;
}

static const pg_config_entry s_delivery[] = {
    {PG_CONFIG_STR, "transport", "zmq", 0, S_OFF(delivery_transport), 0, 0, s_check_transport,
     "How partner records reach the local RMS: `zmq` (its import endpoint, one ack per "
     "message) or `dir` (a drop directory, one file per message)."},
    {PG_CONFIG_STR, "endpoint", "none: partner records are not consumed", PG_CONFIG_DERIVED,
     S_OFF(delivery_endpoint), 0, 0, NULL,
     "`zmq`: the RMS import endpoint to connect to (`tcp://127.0.0.1:5601`); `dir`: the "
     "drop directory. With it, and partners in `policy:`, polegated consumes the "
     "partners' topics and delivers their records here (docs/delivery.md)."},
    {PG_CONFIG_INT, "window", "64", 0, S_OFF(delivery_window), 1, 100000, NULL,
     "Messages sent to the RMS and not yet acknowledged, at most; a full window stops "
     "consuming (backpressure)."},
    {PG_CONFIG_INT, "ack_timeout_ms", "5000", 0, S_OFF(delivery_ack_timeout_ms), 10, 600000, NULL,
     "`zmq`: how long to wait for the RMS's ack before sending the message again."},
    {PG_CONFIG_INT, "retry_max_ms", "60000", 0, S_OFF(delivery_retry_max_ms), 10, 3600000, NULL,
     "`zmq`: the longest wait between two sends of one message (the wait doubles)."},
    {PG_CONFIG_STR, "file_mode", "0640", 0, S_OFF(delivery_file_mode_name), 0, 0, s_check_mode,
     "`dir`: the mode of every delivered file (octal; they hold person records, so never "
     "readable by others: at most 0660)."},
    {PG_CONFIG_STR, "group_id", "`polegate.<force>.partners`, the force code in lower case",
     PG_CONFIG_DERIVED, S_OFF(delivery_group_id), 0, 0, NULL,
     "Kafka consumer group of the partner topics: every polegated of one force uses the "
     "same, so that they share the partitions."},
    {0},
};

static const pg_config_entry s_spool[] = {
    {PG_CONFIG_SIZE, "max_bytes", "256MiB", 0, S_OFF(spool_max_bytes), 1LL << 20, 1LL << 40, NULL,
     "Most bytes of records waiting in the spool for the broker; beyond it intake "
     "answers retry."},
    {PG_CONFIG_COUNT, "max_records", "1000000", 0, S_OFF(spool_max_records), 100, 1LL << 40, NULL,
     "Most records waiting in the spool for the broker; beyond it intake answers retry."},
    {PG_CONFIG_INT, "group_commit", "256", 0, S_OFF(spool_group_commit), 1, 10000, NULL,
     "Most intake requests applied in one write transaction (one fsync)."},
    {PG_CONFIG_INT, "drain_timeout_ms", "10000", 0, S_OFF(spool_drain_timeout_ms), 0, 600000, NULL,
     "On SIGTERM, how long to keep publishing the spool before leaving the rest for the "
     "next start."},
    {0},
};

static const pg_config_entry s_dlq[] = {
    {PG_CONFIG_STR, "topic", "`polegate.<force>.dlq.v1`, the force code in lower case",
     PG_CONFIG_DERIVED, S_OFF(dlq_topic), 0, 0, s_check_topic,
     "Topic of the dead letters: messages that can never be translated (docs/reliability.md)."},
    {PG_CONFIG_COUNT, "max_records", "10000", 0, S_OFF(dlq_max_records), 1, 1LL << 40, NULL,
     "Most dead letters kept locally while the broker cannot take them; partner dead "
     "letters have a bound of this size of their own."},
    {PG_CONFIG_SIZE, "max_bytes", "64MiB", 0, S_OFF(dlq_max_bytes), 1LL << 20, 1LL << 40, NULL,
     "Most bytes of dead letters kept locally while the broker cannot take them; partner "
     "dead letters have a bound of this size of their own."},
    {0},
};

static const pg_config_entry s_audit[] = {
    {PG_CONFIG_STR, "path", "`<store.path>/audit.log`", PG_CONFIG_DERIVED, S_OFF(audit_path), 0, 0,
     NULL,
     "The append-only, hash-chained audit log of collection, disclosure, withholding, "
     "withdrawal, receipt and erasure (docs/policy.md \"Audit log\"); created if missing. "
     "Never opened through a symbolic link, a second name, or when another user owns it."},
    {PG_CONFIG_STR, "fsync", "batch", 0, S_OFF(audit_fsync), 0, 0, s_check_fsync,
     "`event`: fdatasync after every event; `batch`: once per batch of records. Either "
     "way the events are on disk before the step they record is done; an event that "
     "cannot be written stops that step (fail closed) until it can."},
    {PG_CONFIG_STR, "key_file", "none: an unkeyed SHA-256 chain", PG_CONFIG_DERIVED,
     S_OFF(audit_key_file), 0, 0, NULL,
     "The chain's HMAC-SHA-256 key (64 hex digits, mode 0600; `polegate audit keygen` "
     "makes one): without it, whoever can write the log can re-hash it."},
    {PG_CONFIG_STR, "signing_key_file", "none: no checkpoints", PG_CONFIG_DERIVED,
     S_OFF(audit_signing_key_file), 0, 0, NULL,
     "Ed25519 seed (64 hex digits, mode 0600) that signs the checkpoints published to "
     "`audit.topic`; `polegate audit verify --public-key` checks the log against them."},
    {PG_CONFIG_STR, "topic", "`polegate.<force>.audit.v1`, the force code in lower case",
     PG_CONFIG_DERIVED, S_OFF(audit_topic), 0, 0, s_check_topic,
     "Topic of the signed checkpoints (sequence, head hash, time) of the audit log. One per "
     "instance when a force runs several (docs/delivery.md)."},
    {PG_CONFIG_INT, "checkpoint_interval_ms", "60000", 0, S_OFF(audit_checkpoint_interval_ms), 100,
     86400000, NULL, "How often a checkpoint is published (and once more at shutdown)."},
    {PG_CONFIG_SIZE, "rotate_bytes", "0 (never)", PG_CONFIG_DERIVED, S_OFF(audit_rotate_bytes), 0,
     1LL << 40, NULL,
     "Start a new file (the old one renamed `<path>.<first seq>`) once the log holds this "
     "many bytes; the chain carries on across files."},
    {PG_CONFIG_INT, "rotate_seconds", "0 (never)", PG_CONFIG_DERIVED, S_OFF(audit_rotate_seconds),
     0, 31622400, NULL, "Start a new file once the current one has been open this long."},
    {0},
};

static const pg_config_entry s_log[] = {
    {PG_CONFIG_STR, "level", "info", 0, S_OFF(log_level_name), 0, 0, s_check_level,
     "Least severe events written to stderr: `error`, `warn`, `info` or `debug`."},
    {PG_CONFIG_STR, "format", "text", 0, S_OFF(log_format_name), 0, 0, s_check_format,
     "`text` (`TIME polegated LEVEL: message`) or `json` (one object per line: `time`, "
     "`level`, `program`, `msg`). Under systemd every line starts with its syslog "
     "priority (`<3>`), so that `journalctl -p err` works."},
    {0},
};

/* HOST:PORT or [IPV6]:PORT, the port a number; whether HOST is this host's is for
 * the bind at start-up to say. */
static int s_check_listen(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    (void)cfg;
    const char *colon = strrchr(v, ':');
    char *end;
    errno = 0;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    int v6 = v[0] == '[';
    if (colon && colon > v && isdigit((unsigned char)colon[1]) && !*end && !errno && port >= 0 &&
        port <= 65535 && (!v6 || colon[-1] == ']') && (v6 || !memchr(v, ':', (size_t)(colon - v))))
        return 0;
    return pg_errf(PG_ECONFIG, errstr, errstr_size,
                   "'%s' is not HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464)", v);
}

static const pg_config_entry s_metrics[] = {
    {PG_CONFIG_STR, "listen", "none: no endpoint", PG_CONFIG_DERIVED, S_OFF(metrics_listen), 0, 0,
     s_check_listen,
     "`HOST:PORT` of the HTTP endpoint: `/metrics` (Prometheus text format), `/healthz`, "
     "`/readyz`; e.g. `127.0.0.1:9464`. Unauthenticated: keep it on loopback or a "
     "management network (docs/operations.md \"Metrics\")."},
    {0},
};

static int s_check_bool(pg_config *cfg, const char *v, char *errstr, size_t errstr_size)
{
    if (!strcmp(v, "true") || !strcmp(v, "false")) {
        cfg->curve_insecure = !strcmp(v, "true");
        return 0;
    }
    return pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s' is not true or false", v);
}

static const pg_config_entry s_curve[] = {
    {PG_CONFIG_STR, "secret_key_file", "none: plain text (loopback only, with `insecure: true`)",
     PG_CONFIG_DERIVED, S_OFF(curve_secret_key_file), 0, 0, NULL,
     "The gateway's ZeroMQ CURVE secret key (Z85, mode 0600; `polegate keygen` writes a "
     "pair): the intake's server key and delivery's client key."},
    {PG_CONFIG_STR, "intake_clients_file", "none", PG_CONFIG_DERIVED,
     S_OFF(curve_intake_clients_file), 0, 0, NULL,
     "The RMS public keys the intake accepts: one `<Z85 key> [name]` a line; the name (the "
     "key when none is given) is the party of their audit events, so each key and each "
     "name may appear once. Every other connection is refused, logged and counted. Refused "
     "when group or others may write it, or a user other than the daemon's or root owns "
     "it."},
    {PG_CONFIG_STR, "rms_import_key_file", "none", PG_CONFIG_DERIVED,
     S_OFF(curve_rms_import_key_file), 0, 0, NULL,
     "The public key of the RMS import endpoint (`delivery.endpoint`): delivery talks to "
     "no other server."},
    {PG_CONFIG_STR, "insecure", "false", 0, S_OFF(curve_insecure_name), 0, 0, s_check_bool,
     "`true`: the intake and delivery may speak plain text, on loopback endpoints only "
     "(`--check-config` warns). Anyone who can reach a plain-text intake can change or "
     "delete any record."},
    {0},
};

const pg_config_section pg_config__sections[] = {
    {"force", s_force, "Which force this gateway serves."},
    {"adapter", s_adapter, "The native format of the records system."},
    {"intake", s_intake, "Where the records system sends its messages."},
    {"store", s_store, "The local state (ledger) of records and links."},
    {"kafka", s_kafka,
     "The brokers canonical updates are published to (each destination's topic is in "
     "`policy.destinations`)."},
    {"delivery", s_delivery, "Where partner records are delivered (the local RMS's import)."},
    {"spool", s_spool, "The durable queue of records between intake and the broker."},
    {"dlq", s_dlq, "Dead letters."},
    {"audit", s_audit, "The disclosure audit log (Data Protection Act 2018 Part 3, s.62)."},
    {"log", s_log, "Logging."},
    {"metrics", s_metrics, "The metrics and health endpoint."},
    {"curve", s_curve,
     "ZeroMQ CURVE on the RMS side: who may talk to the intake, which RMS import endpoint "
     "delivery talks to (docs/security.md)."},
};
const size_t pg_config__nsections = sizeof pg_config__sections / sizeof pg_config__sections[0];
_Static_assert(sizeof pg_config__sections / sizeof pg_config__sections[0] <= PG_CONFIG_MAX_SECTIONS,
               "PG_CONFIG_MAX_SECTIONS is too small");

const char *pg_config__type_name(pg_config_type t)
{
    switch (t) {
    case PG_CONFIG_STR:
        return "string";
    case PG_CONFIG_INT:
        return "integer";
    case PG_CONFIG_SIZE:
        return "size";
    case PG_CONFIG_PROPS:
        return "mapping";
    case PG_CONFIG_COUNT:
        return "count";
    }
    return "?";
}

void pg_config_reference(FILE *out)
{
    for (size_t i = 0; i < pg_config__nsections; i++) {
        const pg_config_section *sec = &pg_config__sections[i];
        fprintf(out, "### `%s`\n\n%s\n\n| key | type | default | description |\n", sec->name,
                sec->help);
        fprintf(out, "| --- | --- | --- | --- |\n");
        for (const pg_config_entry *e = sec->entries; e->key; e++)
            fprintf(out, "| `%s.%s` | %s | %s%s%s | %s |\n", sec->name, e->key,
                    pg_config__type_name(e->type),
                    e->def && !(e->flags & PG_CONFIG_DERIVED) ? "`" : "",
                    e->flags & PG_CONFIG_REQUIRED ? "required" : e->def,
                    e->def && !(e->flags & PG_CONFIG_DERIVED) ? "`" : "", e->help);
        for (size_t a = 0; !strcmp(sec->name, "adapter") && pg_adapter_at(a); a++)
            for (const pg_adapter_setting *st = pg_adapter_at(a)->settings; st && st->key; st++)
                fprintf(out, "| `adapter.%s` | string | `%s` | `%s` only: %s |\n", st->key, st->def,
                        pg_adapter_at(a)->name, st->help);
        fprintf(out, "\n");
    }
}

void pg_config_each_key(void (*fn)(void *arg, const char *section, const char *key), void *arg)
{
    for (size_t i = 0; i < pg_config__nsections; i++)
        for (const pg_config_entry *e = pg_config__sections[i].entries; e->key; e++)
            fn(arg, pg_config__sections[i].name, e->key);
    for (size_t a = 0; pg_adapter_at(a); a++)
        for (const pg_adapter_setting *st = pg_adapter_at(a)->settings; st && st->key; st++)
            fn(arg, "adapter", st->key);
}

static int s_same(const pg_config_entry *e, const pg_config *a, const pg_config *b)
{
    const void *fa = (const char *)a + e->offset, *fb = (const char *)b + e->offset;
    switch (e->type) {
    case PG_CONFIG_STR: {
        const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
        return sa == sb || (sa && sb && !strcmp(sa, sb));
    }
    case PG_CONFIG_INT:
        return *(const int *)fa == *(const int *)fb;
    case PG_CONFIG_SIZE:
    case PG_CONFIG_COUNT:
        return *(const size_t *)fa == *(const size_t *)fb;
    case PG_CONFIG_PROPS:
        if (a->kafka_property_count != b->kafka_property_count)
            return 0;
        for (size_t i = 0; i < a->kafka_property_count; i++)
            if (strcmp(a->kafka_properties[i].key, b->kafka_properties[i].key) ||
                strcmp(a->kafka_properties[i].value, b->kafka_properties[i].value))
                return 0;
        return 1;
    }
    return 0;
}

void pg_config_diff(const pg_config *a, const pg_config *b,
                    void (*fn)(void *arg, const char *section, const char *key), void *arg)
{
    for (size_t i = 0; i < pg_config__nsections; i++)
        for (const pg_config_entry *e = pg_config__sections[i].entries; e->key; e++)
            if (!s_same(e, a, b))
                fn(arg, pg_config__sections[i].name, e->key);
}

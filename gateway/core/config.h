/* polegated configuration: YAML sections read through config maps, and the log. */
#ifndef POLEGATE_GATEWAY_CONFIG_H
#define POLEGATE_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "polegate/adapter.h"

struct pg_policy;

/* One `kafka.properties` entry, passed verbatim to librdkafka. */
typedef struct pg_config_kv {
    char *key;
    char *value;
    int line; /* 1-based line in the file, for messages */
} pg_config_kv;

/* A loaded configuration. Every string is owned by the config; fields are filled
 * from the config maps in config.c (which also document them: see
 * pg_config_reference and docs/operations.md). */
typedef struct pg_config {
    char *path; /* the file (or name) it was read from */

    /* force */
    char *force;       /* "ESX": 2-4 upper-case letters */
    char *force_lower; /* "esx" */

    /* adapter */
    char *adapter_name;
    /* The adapter's own settings (pg_adapter_ops.settings, the other keys of the
     * `adapter:` section), in the order of its table; NULL: the default. */
    char *adapter_settings[PG_ADAPTER_MAX_SETTINGS];
    const pg_adapter_ops *adapter;

    /* intake */
    char *intake_endpoint;          /* NULL: the drop directory only */
    size_t intake_max_message_size; /* adapter's maximum when not given */
    char *intake_directory;         /* NULL: no drop directory */
    size_t intake_max_file_size;
    int intake_checkpoint_ms; /* the write-ahead log's checkpoint interval */

    /* store */
    char *store_path;
    size_t store_map_size;
    int store_max_withdraw_percent; /* policy change: larger withdrawals wait (router.h) */

    /* kafka (the topics are the policy's: one per destination, docs/topics.md) */
    char *kafka_brokers;
    pg_config_kv *kafka_properties; /* secrets from <property>_file / _env resolved */
    size_t kafka_property_count;
    int kafka_secret_inline; /* a secret property given in the YAML itself */

    /* delivery: partner records to the local RMS (docs/delivery.md) */
    char *delivery_transport; /* "zmq" or "dir" */
    char *delivery_endpoint;  /* NULL: no partner delivery (the consumer does not run) */
    int delivery_window;
    int delivery_ack_timeout_ms;
    int delivery_retry_max_ms;
    char *delivery_group_id;       /* Kafka consumer group; polegate.<force>.partners */
    char *delivery_file_mode_name; /* "0640" */
    unsigned delivery_file_mode;   /* dir: mode of delivered files */

    /* spool */
    size_t spool_max_bytes;
    size_t spool_max_records;
    int spool_group_commit;
    int spool_drain_timeout_ms;

    /* dlq */
    char *dlq_topic; /* polegate.<force lower>.dlq.v1 when not given */
    size_t dlq_max_records;
    size_t dlq_max_bytes;

    /* audit */
    char *audit_path;             /* <store.path>/audit.log when not given */
    char *audit_fsync;            /* "event" or "batch" */
    unsigned audit_sync_every;    /* pg_audit_options.sync_every: 1, or UINT_MAX for "batch" */
    char *audit_key_file;         /* HMAC key of the chain; NULL: unkeyed */
    char *audit_signing_key_file; /* Ed25519 seed; NULL: no checkpoints */
    char *audit_topic;            /* polegate.<force lower>.audit.v1 when not given */
    int audit_checkpoint_interval_ms;
    size_t audit_rotate_bytes; /* 0: never */
    int audit_rotate_seconds;  /* 0: never */

    /* metrics: the HTTP endpoint (gateway/core/metrics.h) */
    char *metrics_listen; /* "HOST:PORT"; NULL: no endpoint */

    /* curve: ZeroMQ CURVE on the RMS side (docs/security.md) */
    char *curve_secret_key_file;
    char *curve_intake_clients_file;
    char *curve_rms_import_key_file;
    char *curve_insecure_name;     /* "true" or "false" */
    int curve_insecure;            /* plain text allowed on loopback endpoints */
    char curve_secret[41];         /* Z85, read at load; "" without a key */
    char curve_rms_import_key[41]; /* Z85 */

    /* log */
    char *log_level_name;
    int log_level; /* a pg_log_level */
    char *log_format_name;
    int log_format; /* a pg_log_format */

    /* policy: what may be shared with whom (gateway/core/policy.h, docs/policy.md); owned by
     * the config. Never NULL in a loaded config: at least one destination. */
    struct pg_policy *policy;
} pg_config;

/* Read and validate the YAML file at path, its `policy:` section included (parsed by
 * pg_policy_parse). NULL on failure, with every problem found written into errstr, one
 * per line ("FILE:LINE: unknown key 'x' in section 'kafka'", "FILE:LINE:COL:
 * policy.destinations[0]...: ..."), truncated to errstr_size. The caller owns the
 * result. */
pg_config *pg_config_load(const char *path, char *errstr, size_t errstr_size);
/* The same for YAML text in memory; name stands for the file in messages. */
pg_config *pg_config_parse(const char *name, const char *text, size_t len, char *errstr,
                           size_t errstr_size);
/* What a reload must refuse that the new file alone does not show: next checked
 * against running (the configuration in force; its policy the one running): a
 * destination or partner of next's policy on the dead-letter or audit checkpoint topic
 * in force; rules changed under the running policy.version (a start refuses them too).
 * 0, or PG_ECONFIG with every problem, one per line, in errstr. */
int pg_config_check_reload(const pg_config *running, const pg_config *next, char *errstr,
                           size_t errstr_size);
/* Call fn with each thing in cfg that is allowed but weakens it (plain text, secrets
 * in a file others can read); the number of warnings. --check-config prints them, the
 * daemon logs them at start. */
int pg_config_warnings(const pg_config *cfg, void (*fn)(void *ud, const char *warning), void *ud);
/* Frees the config; sets *p to NULL; NULL-safe. */
void pg_config_destroy(pg_config **p);

/* Write the reference of every section and key, generated from the config maps, as
 * Markdown tables (docs/operations.md carries the same text). */
void pg_config_reference(FILE *out);

/* Calls fn for every section and key the config maps know (tests use it to keep the
 * documentation in step with the maps). */
void pg_config_each_key(void (*fn)(void *arg, const char *section, const char *key), void *arg);

/* Calls fn for every key whose value differs between a and b (a reload uses it to
 * say which changes wait for a restart). The policy is not compared: its version is. */
void pg_config_diff(const pg_config *a, const pg_config *b,
                    void (*fn)(void *arg, const char *section, const char *key), void *arg);

#endif

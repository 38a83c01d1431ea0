/* Unit tests for gateway/core/config: good configs, every kind of bad one, the reference. */
#include <check.h>
#include <glib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "curve.h"
#include "log.h"
#include "polegate/error.h"
#include "policy.h"

#define ROOT PG_FIXTURES "/../.."

static char s_err[8192];

#define FORCE "force:\n  code: ESX\n"
#define ADAPTER "adapter:\n  name: athena\n"
#define INTAKE "intake:\n  endpoint: tcp://127.0.0.1:5555\n"
#define STORE "store:\n  path: /tmp/pg-test-store\n"
#define KAFKA "kafka:\n  brokers: 127.0.0.1:19092\n"
/* The smallest policy: one destination (lines 1-4 of BASE). */
#define POLICY                                                                                     \
    "policy:\n"                                                                                    \
    "  version: T-1\n"                                                                             \
    "  agreements: [{name: A, description: a}]\n"                                                  \
    "  destinations: [{name: national, kind: national, topic: polegate.esx.national.pole.v1, "     \
    "agreement: A, max_classification: OFFICIAL, kinds: all}]\n"
/* A complete config whose last section is kafka (line 14 is its last line). */
#define BASE POLICY FORCE ADAPTER INTAKE STORE KAFKA

/* text, and plain text on the loopback intake allowed at its end (so that line
 * numbers stay those of text) unless text says something of curve itself. */
static pg_config *s_parse(const char *text)
{
    s_err[0] = 0;
    char *full = NULL;
    int add = strstr(text, "intake:") && !strstr(text, "curve:");
    if (asprintf(&full, "%s%s", text, add ? "curve: {insecure: true}\n" : "") < 0)
        return NULL;
    pg_config *cfg = pg_config_parse("t.yaml", full, strlen(full), s_err, sizeof s_err);
    free(full);
    return cfg;
}

/* The config must be refused with a message containing want. */
static void s_bad(const char *text, const char *want)
{
    pg_config *cfg = s_parse(text);
    ck_assert_msg(cfg == NULL, "accepted, expected \"%s\"", want);
    ck_assert_msg(strstr(s_err, want) != NULL, "got \"%s\", expected \"%s\"", s_err, want);
}

START_TEST(test_minimal_defaults)
{
    pg_config *cfg = s_parse(BASE);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_str_eq(cfg->force, "ESX");
    ck_assert_str_eq(cfg->force_lower, "esx");
    ck_assert_ptr_eq(cfg->adapter, &pg_adapter_athena);
    ck_assert_str_eq(cfg->intake_endpoint, "tcp://127.0.0.1:5555");
    ck_assert_uint_eq(cfg->intake_max_message_size, pg_adapter_athena.max_message_size);
    ck_assert_str_eq(cfg->store_path, "/tmp/pg-test-store");
    ck_assert_uint_eq(cfg->store_map_size, 1ULL << 30);
    ck_assert_str_eq(cfg->kafka_brokers, "127.0.0.1:19092");
    ck_assert_uint_eq(cfg->spool_max_bytes, 256u << 20);
    ck_assert_uint_eq(cfg->spool_max_records, 1000000);
    ck_assert_int_eq(cfg->spool_group_commit, 256);
    ck_assert_int_eq(cfg->spool_drain_timeout_ms, 10000);
    ck_assert_str_eq(cfg->dlq_topic, "polegate.esx.dlq.v1");
    ck_assert_uint_eq(cfg->dlq_max_records, 10000);
    ck_assert_uint_eq(cfg->dlq_max_bytes, 64u << 20);
    ck_assert_str_eq(cfg->audit_path, "/tmp/pg-test-store/audit.log");
    ck_assert_str_eq(cfg->audit_fsync, "batch");
    ck_assert_uint_eq(cfg->audit_sync_every, UINT_MAX);
    ck_assert_ptr_nonnull(cfg->policy);
    ck_assert_str_eq(pg_policy_version(cfg->policy), "T-1");
    ck_assert_uint_eq(pg_policy_destination_count(cfg->policy), 1);
    ck_assert_str_eq(pg_policy_destination_at(cfg->policy, 0)->topic,
                     "polegate.esx.national.pole.v1");
    ck_assert_uint_eq(cfg->kafka_property_count, 0);
    ck_assert_str_eq(cfg->log_level_name, "info");
    ck_assert_int_eq(cfg->log_level, PG_LOG_INFO);
    ck_assert_str_eq(cfg->path, "t.yaml");
    pg_config_destroy(&cfg);
    ck_assert_ptr_null(cfg);
    pg_config_destroy(&cfg);
}
END_TEST

START_TEST(test_full)
{
    pg_config *cfg =
        s_parse("force: {code: MER}\n"
                "adapter: {name: nx5}\n"
                "intake:\n"
                "  endpoint: ipc:///tmp/pg.sock\n"
                "  max_message_size: 2MiB\n"
                "store:\n"
                "  path: /tmp/x\n"
                "  map_size: 64M\n"
                "kafka:\n"
                "  brokers: a:9092,b:9092\n"
                "  properties:\n"
                "    linger.ms: 20\n"
                "    acks: all\n"
                "    enable.idempotence: true\n"
                "    client.id: \"polegated-mer\"\n"
                "log:\n"
                "  level: debug\n"
                "spool: {max_bytes: 1GiB, max_records: 5000, group_commit: 16,\n"
                "        drain_timeout_ms: 0}\n"
                "dlq: {topic: mer.dead, max_records: 7, max_bytes: 2MiB}\n"
                "audit: {path: /var/log/pg/audit.log, fsync: batch}\n"
                "policy:\n"
                "  version: MER-7\n"
                "  agreements: [{name: A, description: a}]\n"
                "  destinations:\n"
                "    - {name: esx, kind: force, force: ESX, topic: polegate.mer.esx.pole.v1,\n"
                "       agreement: A, max_classification: OFFICIAL, kinds: [person]}\n"
                "  partners:\n"
                "    - {force: ESX, topic: polegate.esx.mer.pole.v1, agreement: A}\n");
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_ptr_eq(cfg->adapter, &pg_adapter_niche);
    ck_assert_uint_eq(cfg->spool_max_bytes, 1u << 30);
    ck_assert_uint_eq(cfg->spool_max_records, 5000);
    ck_assert_int_eq(cfg->spool_group_commit, 16);
    ck_assert_int_eq(cfg->spool_drain_timeout_ms, 0);
    ck_assert_str_eq(cfg->dlq_topic, "mer.dead");
    ck_assert_uint_eq(cfg->dlq_max_records, 7);
    ck_assert_uint_eq(cfg->dlq_max_bytes, 2u << 20);
    ck_assert_str_eq(cfg->audit_path, "/var/log/pg/audit.log");
    ck_assert_uint_eq(cfg->audit_sync_every, UINT_MAX);
    ck_assert_str_eq(pg_policy_force(cfg->policy), "MER");
    ck_assert_str_eq(pg_policy_partner_at(cfg->policy, 0)->topic, "polegate.esx.mer.pole.v1");
    ck_assert_uint_eq(cfg->intake_max_message_size, 2u << 20);
    ck_assert_uint_eq(cfg->store_map_size, 64u << 20);
    ck_assert_uint_eq(cfg->kafka_property_count, 4);
    ck_assert_str_eq(cfg->kafka_properties[0].key, "linger.ms");
    ck_assert_str_eq(cfg->kafka_properties[0].value, "20");
    ck_assert_int_eq(cfg->kafka_properties[0].line, 12);
    ck_assert_str_eq(cfg->kafka_properties[3].key, "client.id");
    ck_assert_str_eq(cfg->kafka_properties[3].value, "polegated-mer");
    ck_assert_int_eq(cfg->log_level, PG_LOG_DEBUG);
    pg_config_destroy(&cfg);
}
END_TEST

static char *s_slurp(FILE *f);

/* config/<force>.yaml as shipped, its /etc/polegate/ key files made in dir by
 * keygen (the RMS's key on the allow-list; the audit keys). */
static pg_config *s_example(const char *force, const char *dir)
{
    char path[512], base[128], *text = NULL;
    snprintf(base, sizeof base, "%s/%s", dir, force);
    ck_assert_int_eq(mkdir(base, 0700), 0);
    snprintf(path, sizeof path, "%s/curve", base);
    ck_assert_int_eq(pg_curve_keygen(path, s_err, sizeof s_err), 0);
    snprintf(path, sizeof path, "%s/rms-import", base);
    ck_assert_int_eq(pg_curve_keygen(path, s_err, sizeof s_err), 0);
    char pub[PG_CURVE_KEY_LEN];
    snprintf(path, sizeof path, "%s/rms-import.pub", base);
    ck_assert_int_eq(pg_curve_key_load(path, 0, pub, s_err, sizeof s_err), 0);
    snprintf(path, sizeof path, "%s/intake-clients", base);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s rms\n", pub);
    fclose(f);
    /* the audit keys, as the package's postinst makes them */
    ck_assert_msg(pg_audit_keygen(base, s_err, sizeof s_err) == 0, "%s", s_err);
    snprintf(path, sizeof path, ROOT "/config/%s.yaml", force);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *doc = s_slurp(f);
    fclose(f);
    GString *g = g_string_new(doc);
    char with[256];
    snprintf(with, sizeof with, "%s/", dir);
    g_string_replace(g, "/etc/polegate/", with, 0);
    text = g_string_free(g, FALSE);
    pg_config *cfg = pg_config_parse(path, text, strlen(text), s_err, sizeof s_err);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    /* the shipped configs use CURVE */
    ck_assert_int_eq(cfg->curve_insecure, 0);
    ck_assert_uint_eq(strlen(cfg->curve_secret), 40);
    g_free(text);
    free(doc);
    return cfg;
}

START_TEST(test_example_files)
{
    char dir[] = "/tmp/pg-test-config-keys-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    pg_config *esx = s_example("esx", dir);
    pg_config *mer = s_example("mer", dir);
    ck_assert_str_eq(esx->force, "ESX");
    ck_assert_str_eq(mer->force, "MER");
    ck_assert_ptr_eq(esx->adapter, &pg_adapter_athena);
    ck_assert_ptr_eq(mer->adapter, &pg_adapter_niche);
    /* each shares with the national service and the other, and reads the other */
    const char *esx_topics[] = {"polegate.esx.national.pole.v1", "polegate.esx.mer.pole.v1"};
    const char *mer_topics[] = {"polegate.mer.national.pole.v1", "polegate.mer.esx.pole.v1"};
    ck_assert_uint_eq(pg_policy_destination_count(esx->policy), 2);
    ck_assert_uint_eq(pg_policy_destination_count(mer->policy), 2);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_str_eq(pg_policy_destination_at(esx->policy, i)->topic, esx_topics[i]);
        ck_assert_str_eq(pg_policy_destination_at(mer->policy, i)->topic, mer_topics[i]);
    }
    ck_assert_uint_eq(pg_policy_partner_count(esx->policy), 1);
    ck_assert_uint_eq(pg_policy_partner_count(mer->policy), 1);
    /* what one publishes to the other is what the other reads */
    ck_assert_str_eq(pg_policy_partner_at(esx->policy, 0)->topic, mer_topics[1]);
    ck_assert_str_eq(pg_policy_partner_at(mer->policy, 0)->topic, esx_topics[1]);
    ck_assert_str_eq(pg_policy_partner_at(esx->policy, 0)->force, "MER");
    ck_assert_str_eq(pg_policy_partner_at(mer->policy, 0)->force, "ESX");
    ck_assert_str_ne(esx->intake_endpoint, mer->intake_endpoint);
    ck_assert_str_ne(esx->store_path, mer->store_path);
    pg_config_destroy(&esx);
    pg_config_destroy(&mer);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_unknown_key)
{
    s_bad(BASE "  x: 1\n", "t.yaml:15: unknown key 'x' in section 'kafka'");
    s_bad(BASE "log:\n  lvl: info\n", "t.yaml:16: unknown key 'lvl' in section 'log'");
}
END_TEST

START_TEST(test_unknown_section)
{
    s_bad(BASE "monitoring:\n  port: 9100\n", "t.yaml:15: unknown section 'monitoring'");
}
END_TEST

START_TEST(test_wrong_types)
{
    s_bad("force: ESX\n", "t.yaml:1: section 'force' must be a mapping of keys, not a scalar");
    s_bad("force:\n  code: [ESX]\n", "t.yaml:2: force.code: expected a string, got a list");
    s_bad("force:\n  code:\n", "t.yaml:2: force.code: expected a string, got nothing");
    s_bad(BASE "spool:\n  group_commit: ten\n",
          "t.yaml:16: spool.group_commit: 'ten' is not an integer from 1 to 10000");
    s_bad(BASE "spool:\n  group_commit: 10001\n",
          "spool.group_commit: '10001' is not an integer from 1 to 10000");
    s_bad(BASE "  properties: [a, b]\n",
          "t.yaml:15: kafka.properties: expected a mapping, got a list");
    s_bad(BASE "  properties:\n    linger.ms: {a: 1}\n",
          "t.yaml:16: kafka.properties.linger.ms: expected a scalar value, got a mapping");
    s_bad(BASE "  brokers2: x\n", "unknown key 'brokers2' in section 'kafka'");
}
END_TEST

START_TEST(test_bad_size)
{
    s_bad(FORCE ADAPTER INTAKE KAFKA "store:\n  path: /x\n  map_size: lots\n",
          "store.map_size: 'lots' is not a size");
    s_bad(FORCE ADAPTER INTAKE KAFKA "store:\n  path: /x\n  map_size: 10K\n",
          "store.map_size: 10240 bytes is outside 1048576 to");
    s_bad(FORCE ADAPTER INTAKE KAFKA "store:\n  path: /x\n  map_size: 99999999999999999999G\n",
          "store.map_size: '99999999999999999999G' is not a size");
    s_bad(FORCE ADAPTER INTAKE KAFKA "store:\n  path: /x\n  map_size: -5\n",
          "store.map_size: '-5' is not a size");
    /* a map the largest ATX message (1 MiB) could never be taken into, past the
     * headroom kept for removals */
    s_bad(FORCE ADAPTER INTAKE KAFKA "store:\n  path: /x\n  map_size: 4MiB\n",
          "store.map_size: 4194304 bytes leaves 3145728 bytes beyond the 1048576 kept free "
          "for removals, less than two of the largest messages may take (8421376 bytes for "
          "intake.max_message_size 1048576); raise store.map_size");
}
END_TEST

START_TEST(test_missing_required)
{
    s_bad("adapter: {name: athena}\n"
          "intake: {endpoint: tcp://127.0.0.1:1}\n"
          "store: {path: /x}\n"
          "kafka: {brokers: b:1}\n",
          "t.yaml: missing section 'force' (its key 'code' is required)");
    s_bad("force:\n  name: Essex\nadapter: {name: athena}\n"
          "intake: {endpoint: tcp://127.0.0.1:1}\nstore: {path: /x}\nkafka: {brokers: b:1}\n",
          "t.yaml:1: section 'force': missing required key 'code'");
    s_bad(FORCE ADAPTER INTAKE KAFKA "store:\n  map_size: 1G\n",
          "section 'store': missing required key 'path'");
}
END_TEST

START_TEST(test_bad_values)
{
    s_bad("force: {code: Essex}\n",
          "t.yaml:1: force.code: 'Essex' is not a force code (2-4 upper-case letters");
    s_bad("force: {code: E}\n", "force.code: 'E' is not a force code");
    s_bad("force: {code: ESSEX}\n", "force.code: 'ESSEX' is not a force code");
    s_bad("adapter: {name: oracle}\n", "adapter.name: 'oracle' is not an adapter (athena, niche)");
    s_bad("intake: {endpoint: 'http://x:80'}\n",
          "intake.endpoint: 'http://x:80' is not a ZeroMQ endpoint");
    s_bad("intake: {endpoint: 'tcp://127.0.0.1:99999'}\n",
          "intake.endpoint: 'tcp://127.0.0.1:99999' is not a ZeroMQ endpoint");
    s_bad("intake: {endpoint: 'tcp://127.0.0.1'}\n", "is not a ZeroMQ endpoint");
    s_bad(BASE "dlq: {topic: 'bad topic!'}\n", "dlq.topic: 'bad topic!' is not a Kafka topic name");
    s_bad(BASE "log: {level: loud}\n",
          "log.level: 'loud' is not a log level (error, warn, info, debug)");
    s_bad(FORCE ADAPTER STORE KAFKA
          "intake:\n  endpoint: tcp://127.0.0.1:1\n  max_message_size: 2MiB\n",
          "intake.max_message_size: 2097152 bytes exceeds the athena adapter's maximum of "
          "1048576 bytes");
}
END_TEST

START_TEST(test_safety_properties)
{
    s_bad(BASE "  properties:\n    acks: 1\n",
          "t.yaml:16: kafka.properties.acks: 'acks' is fixed to 'all' by polegate");
    s_bad(BASE "  properties:\n    request.required.acks: 0\n",
          "'request.required.acks' is fixed to 'all'");
    s_bad(BASE "  properties:\n    enable.idempotence: false\n",
          "kafka.properties.enable.idempotence: 'enable.idempotence' is fixed to 'true'");
    s_bad(BASE "  properties:\n    partitioner: consistent_random\n",
          "'partitioner' is fixed to 'murmur2_random' by polegate (keys must map to the "
          "partitions Java clients compute) and cannot be 'consistent_random'");
    s_bad(BASE "  properties:\n    bootstrap.servers: x:1\n",
          "kafka.properties.bootstrap.servers: set the brokers with kafka.brokers");
    s_bad(BASE "  properties:\n    no.such.property: 1\n",
          "kafka.properties.no.such.property: librdkafka: No such configuration property");
    s_bad(BASE "  properties:\n    linger.ms: soon\n", "kafka.properties.linger.ms: librdkafka");
    /* The required values themselves are harmless. */
    pg_config *cfg = s_parse(BASE "  properties:\n    acks: -1\n    partitioner: "
                                  "murmur2_random\n");
    ck_assert_msg(cfg != NULL, "%s", s_err);
    pg_config_destroy(&cfg);
}
END_TEST

START_TEST(test_yaml_syntax)
{
    s_bad("force:\n\tcode: ESX\n", "t.yaml:2: YAML: tab character may not be used");
    s_bad("force:\n  code: ESX\n adapter: x\n", "t.yaml:3: YAML: invalid indentation");
    s_bad("force:\n  code: ESX\n  code: MER\n", "t.yaml:3: YAML: duplicate key");
    s_bad("", "t.yaml: the configuration is empty");
    s_bad("# nothing but a comment\n", "t.yaml: the configuration is empty");
    s_bad("~\n", "t.yaml: the configuration is empty");
    s_bad("- a\n- b\n", "t.yaml:1: the configuration must be a mapping of sections, not a list");
}
END_TEST

/* The drop directory beside the endpoint or instead of it; neither is refused. */
START_TEST(test_intake_directory)
{
    pg_config *cfg =
        s_parse(POLICY FORCE ADAPTER "intake:\n  directory: /var/spool/polegate/in\n" STORE KAFKA);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_ptr_null(cfg->intake_endpoint);
    ck_assert_str_eq(cfg->intake_directory, "/var/spool/polegate/in");
    ck_assert_uint_eq(cfg->intake_max_file_size, 1u << 30);
    pg_config_destroy(&cfg);
    cfg = s_parse(POLICY FORCE ADAPTER "intake:\n  endpoint: tcp://127.0.0.1:5555\n"
                                       "  directory: /in\n  max_file_size: 64MiB\n" STORE KAFKA);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_str_eq(cfg->intake_endpoint, "tcp://127.0.0.1:5555");
    ck_assert_str_eq(cfg->intake_directory, "/in");
    ck_assert_uint_eq(cfg->intake_max_file_size, 64u << 20);
    pg_config_destroy(&cfg);
    s_bad(POLICY FORCE ADAPTER "intake:\n  max_message_size: 1000\n" STORE KAFKA,
          "intake: give an endpoint, a directory, or both");
}
END_TEST

/* Found by attack: an intake.directory that was store.path, inside it, held it, or held
 * audit.path was taken, and the daemon took in its own store and audit log as RMS
 * messages. */
START_TEST(test_intake_directory_apart_from_state)
{
#define S_DIRS(dir, store, audit)                                                                  \
    POLICY FORCE ADAPTER KAFKA "intake:\n  directory: " dir "\nstore:\n  path: " store             \
                               "\naudit:\n  path: " audit "\n"
    s_bad(S_DIRS("/srv/pg", "/srv/pg/", "/var/log/pg/audit.log"),
          "intake.directory: '/srv/pg' is store.path '/srv/pg/' or inside it: the daemon would "
          "take in its own store");
    s_bad(S_DIRS("/srv/pg/in", "/srv/pg", "/var/log/pg/audit.log"),
          "intake.directory: '/srv/pg/in' is store.path '/srv/pg' or inside it");
    s_bad(S_DIRS("/srv/x/../pg/./in", "/srv/pg", "/var/log/pg/audit.log"),
          "intake.directory: '/srv/x/../pg/./in' is store.path '/srv/pg' or inside it");
    s_bad(S_DIRS("/srv", "/srv/pg", "/var/log/pg/audit.log"),
          "intake.directory: '/srv' holds store.path '/srv/pg': the daemon would take in its own "
          "store");
    s_bad(S_DIRS("/var/spool/in", "/srv/pg", "/var/spool/in/audit.log"),
          "intake.directory: '/var/spool/in' holds audit.path '/var/spool/in/audit.log': the "
          "daemon would take in its own audit log");
    s_bad(S_DIRS("/var/spool", "/srv/pg", "/var/spool/in/audit.log"),
          "intake.directory: '/var/spool' holds audit.path");
    /* the default audit.path, beside the store */
    s_bad(POLICY FORCE ADAPTER KAFKA "intake:\n  directory: /srv/pg\nstore:\n  path: /srv/pg\n",
          "holds audit.path '/srv/pg/audit.log'");
    /* through symbolic links: dir/in -> store, dir/deep -> store/sub */
    char dir[] = "/tmp/pg-test-config-dirs-XXXXXX", text[2048], path[192], store[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(store, sizeof store, "%s/store", dir);
    ck_assert_int_eq(mkdir(store, 0700), 0);
    snprintf(path, sizeof path, "%s/in", dir);
    ck_assert_int_eq(symlink(store, path), 0);
    snprintf(path, sizeof path, "%s/sub", store);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    char deep[128];
    snprintf(deep, sizeof deep, "%s/deep", dir);
    ck_assert_int_eq(symlink(path, deep), 0);
    /* each intake.directory, under dir, is inside the store: through the link; ".."
     * after a link is the link target's parent, as the kernel takes it (store/drop,
     * taken as dir/drop before); a link reached again after a ".." past a name that
     * does not exist yet (the store makes its missing directories, so dir/new/../in is
     * dir/in), resolved too (found by review: only the part before the name that does
     * not exist went through its links) */
    const char *inside[] = {"/in/drop", "/deep/../drop", "/new/../in/drop"};
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
        snprintf(text, sizeof text,
                 POLICY FORCE ADAPTER KAFKA "intake:\n  directory: %s%s\nstore:\n  path: %s\n"
                                            "audit:\n  path: /var/log/pg/audit.log\n",
                 dir, inside[i], store);
        s_bad(text, "is store.path");
    }
    /* apart: accepted (a name that only starts like the store's is another directory) */
    pg_config *cfg = s_parse(S_DIRS("/srv/pg-in", "/srv/pg", "/srv/pg-inaudit.log"));
    ck_assert_msg(cfg != NULL, "%s", s_err);
    pg_config_destroy(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
#undef S_DIRS
}
END_TEST

START_TEST(test_every_error_reported)
{
    pg_config *cfg = s_parse("force: {code: x}\nadapter: {name: y}\nbogus: 1\n");
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(strstr(s_err, "t.yaml:1: force.code: 'x'"));
    ck_assert_ptr_nonnull(strstr(s_err, "t.yaml:2: adapter.name: 'y'"));
    ck_assert_ptr_nonnull(strstr(s_err, "t.yaml:3: unknown section 'bogus'"));
    ck_assert_ptr_nonnull(strstr(s_err, " curve, ")); /* the list is every section there is */
    ck_assert_ptr_nonnull(strstr(s_err, "intake: give an endpoint, a directory, or both"));
    ck_assert_ptr_nonnull(strstr(s_err, "missing section 'kafka'"));
    ck_assert_ptr_nonnull(strstr(s_err, "missing section 'policy'"));
    ck_assert_int_eq(s_err[strlen(s_err) - 1] != '\n', 1);
}
END_TEST

START_TEST(test_file_errors)
{
    ck_assert_ptr_null(pg_config_load("/nonexistent/pg.yaml", s_err, sizeof s_err));
    ck_assert_ptr_nonnull(strstr(s_err, "/nonexistent/pg.yaml: cannot read the file"));
    char path[] = "/tmp/pg-test-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(BASE "  nope: 1\n", f);
    fclose(f);
    ck_assert_ptr_null(pg_config_load(path, s_err, sizeof s_err));
    char want[128];
    snprintf(want, sizeof want, "%s:15: unknown key 'nope' in section 'kafka'", path);
    ck_assert_msg(strstr(s_err, want) != NULL, "%s", s_err);
    unlink(path);

    /* Not a regular file: refused from the one open that is also parsed (a FIFO with
     * no writer used to block the start for ever; a directory read as an empty file). */
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_ptr_null(pg_config_load(path, s_err, sizeof s_err));
    snprintf(want, sizeof want, "%s: not a regular file", path);
    ck_assert_msg(strcmp(s_err, want) == 0, "%s", s_err);
    unlink(path);
    ck_assert_ptr_null(pg_config_load("/tmp", s_err, sizeof s_err));
    ck_assert_msg(strcmp(s_err, "/tmp: not a regular file") == 0, "%s", s_err);
}
END_TEST

typedef struct s_doc {
    const char *text;
    int missing;
} s_doc;

static void s_in_doc(void *arg, const char *section, const char *key)
{
    s_doc *d = arg;
    char want[128];
    snprintf(want, sizeof want, "`%s.%s`", section, key);
    if (!strstr(d->text, want)) {
        fprintf(stderr, "not documented: %s\n", want);
        d->missing++;
    }
}

static char *s_slurp(FILE *f)
{
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

START_TEST(test_reference_matches_docs)
{
    char *ref = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&ref, &len);
    pg_config_reference(mem);
    fclose(mem);
    s_doc d = {ref, 0};
    pg_config_each_key(s_in_doc, &d);
    ck_assert_int_eq(d.missing, 0);
    ck_assert_ptr_nonnull(
        strstr(ref, "| `dlq.topic` | string | `polegate.<force>.dlq.v1`, the force code in "
                    "lower case |"));
    ck_assert_ptr_nonnull(strstr(ref, "| `force.code` | string | required |"));

    /* docs/operations.md carries the generated reference verbatim. */
    FILE *f = fopen(ROOT "/docs/operations.md", "r");
    ck_assert_ptr_nonnull(f);
    char *doc = s_slurp(f);
    fclose(f);
    ck_assert_msg(strstr(doc, ref) != NULL,
                  "docs/operations.md does not hold the output of polegated "
                  "--config-reference");
    free(doc);
    free(ref);
}
END_TEST

/* The single outbound topic is gone: each destination names its own. */
START_TEST(test_kafka_topic_gone)
{
    s_bad(BASE "  topic: polegate.esx.pole.v1\n",
          "t.yaml:15: kafka.topic: no longer a setting: each destination has its own topic "
          "(policy.destinations[].topic, docs/topics.md)");
}
END_TEST

START_TEST(test_policy_required)
{
    s_bad(FORCE ADAPTER INTAKE STORE KAFKA,
          "t.yaml: missing section 'policy': without destinations this gateway would publish "
          "nothing");
    s_bad(FORCE ADAPTER INTAKE STORE KAFKA "policy:\n  version: T-1\n",
          "t.yaml:11: policy.destinations: none: this gateway would publish nothing");
    s_bad(FORCE ADAPTER INTAKE STORE KAFKA "policy:\n  version: T-1\n  destinations: []\n",
          "policy.destinations: none");
}
END_TEST

/* The policy's own checks, with FILE:LINE:COL, next to the other sections' problems. */
START_TEST(test_policy_errors_reported)
{
    pg_config *cfg = s_parse(FORCE ADAPTER INTAKE STORE KAFKA
                             "log: {level: loud}\n"
                             "policy:\n"
                             "  version: T-1\n"
                             "  agreements: [{name: A, description: a}]\n"
                             "  destinations:\n"
                             "    - {name: d, kind: national, topic: t.d, agreement: A,\n"
                             "       max_classification: SECRET, kinds: all}\n");
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(s_err, "t.yaml:11: log.level: 'loud'") != NULL, "%s", s_err);
    ck_assert_msg(strstr(s_err, "t.yaml:17:28: policy.destinations[0].max_classification: SECRET "
                                "is never shared") != NULL,
                  "%s", s_err);
    s_bad(FORCE ADAPTER INTAKE STORE KAFKA "policy:\n  version: T-1\n  colour: red\n",
          "t.yaml:13:3: policy: unknown key 'colour'");
    /* every problem of the policy, not only the first */
    cfg = s_parse(FORCE ADAPTER INTAKE STORE KAFKA
                  "policy:\n"
                  "  version: T-1\n"
                  "  colour: red\n"
                  "  agreements: [{name: A, description: a}, {name: B}]\n"
                  "  destinations:\n"
                  "    - {name: d, kind: regional, topic: t.d, agreement: A,\n"
                  "       max_classification: OFFICIAL, kinds: [persons]}\n");
    ck_assert_ptr_null(cfg);
    const char *want[] = {
        "t.yaml:13:3: policy: unknown key 'colour'",
        "t.yaml:14:44: policy.agreements[1]: missing required key 'description'",
        "t.yaml:16:23: policy.destinations[0].kind: unknown destination kind 'regional'",
        "t.yaml:17:46: policy.destinations[0].kinds[0]: unknown kind 'persons'",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(s_err, want[i]) != NULL, "no \"%s\" in:\n%s", want[i], s_err);
    /* rules between keys, once every key parsed: all of them too */
    cfg = s_parse(FORCE ADAPTER INTAKE STORE KAFKA
                  "policy:\n"
                  "  version: T-1\n"
                  "  agreements: [{name: A, description: a}]\n"
                  "  destinations:\n"
                  "    - {name: d, kind: national, topic: t.d, agreement: Z,\n"
                  "       max_classification: OFFICIAL, kinds: all}\n"
                  "    - {name: d, kind: national, topic: t.e, agreement: A,\n"
                  "       max_classification: OFFICIAL, kinds: all}\n");
    ck_assert_ptr_null(cfg);
    ck_assert_msg(
        strstr(s_err, "policy.destinations[0] (d): agreement 'Z' is not declared") &&
            strstr(s_err, "policy.destinations[1] (d): name 'd' is also destinations[0]'s"),
        "%s", s_err);
    s_bad(FORCE ADAPTER INTAKE STORE KAFKA "policy:\n  version: T-1\n"
                                           "  destinations:\n"
                                           "    - {name: d, kind: national, topic: t.d, "
                                           "agreement: Z, max_classification: OFFICIAL, kinds: "
                                           "all}\n",
          "agreement 'Z' is not declared in policy.agreements");
    /* a destination may not be ourselves; checked against force.code */
    s_bad(FORCE ADAPTER INTAKE STORE KAFKA "policy:\n  version: T-1\n"
                                           "  agreements: [{name: A, description: a}]\n"
                                           "  destinations:\n"
                                           "    - {name: d, kind: force, force: ESX, topic: t.d, "
                                           "agreement: A, max_classification: OFFICIAL, kinds: "
                                           "all}\n",
          "t.yaml:15:");
}
END_TEST

START_TEST(test_audit_spool_dlq)
{
    s_bad(BASE "audit: {fsync: sometimes}\n",
          "t.yaml:15: audit.fsync: 'sometimes' is not an fsync mode (event: every event");
    s_bad(BASE "audit: {path: /x, when: now}\n", "unknown key 'when' in section 'audit'");
    s_bad(BASE "spool: {max_records: 10}\n",
          "t.yaml:15: spool.max_records: '10' is not a whole number from 100 to");
    s_bad(BASE "spool: {max_records: 1K}\n", "spool.max_records: '1K' is not a whole number");
    s_bad(BASE "spool: {group_commit: 0}\n",
          "spool.group_commit: '0' is not an integer from 1 to 10000");
    s_bad(BASE "spool: {max_bytes: 1K}\n", "spool.max_bytes: 1024 bytes is outside");
    s_bad(BASE "dlq: {max_records: 0}\n", "dlq.max_records: '0' is not a whole number from 1");
    s_bad(BASE "dlq: {topic: polegate.esx.national.pole.v1}\n",
          "t.yaml:1: policy.destinations[0] (national): topic 'polegate.esx.national.pole.v1' is "
          "the dead-letter topic");
    /* nor the audit checkpoint topic, shared with a destination, a partner or the dead
     * letters (it was taken: found by a review) */
    s_bad(BASE "audit: {topic: polegate.esx.national.pole.v1}\n",
          "t.yaml:1: policy.destinations[0] (national): topic 'polegate.esx.national.pole.v1' is "
          "the audit checkpoint topic");
    s_bad(BASE "audit: {topic: polegate.esx.dlq.v1}\n",
          "audit.topic: 'polegate.esx.dlq.v1' is the dead-letter topic");
    s_bad(
        "policy:\n  version: T-1\n  agreements: [{name: A, description: a}]\n"
        "  destinations: [{name: national, kind: national, topic: polegate.esx.national.pole.v1, "
        "agreement: A, max_classification: OFFICIAL, kinds: all}]\n"
        "  partners: [{force: MER, topic: polegate.mer.esx.pole.v1, agreement: A}]\n" FORCE ADAPTER
            INTAKE STORE KAFKA "audit: {topic: polegate.mer.esx.pole.v1}\n",
        "policy.partners[0] (MER): topic 'polegate.mer.esx.pole.v1' is the audit checkpoint "
        "topic");
    /* the audit log lives beside the store unless told otherwise */
    pg_config *cfg = s_parse(POLICY FORCE ADAPTER INTAKE KAFKA "store: {path: /srv/pg/}\n");
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_str_eq(cfg->audit_path, "/srv/pg/audit.log");
    pg_config_destroy(&cfg);
}
END_TEST

/* Found by attack: a reload checked the new file alone, and dlq.topic and audit.topic
 * only change at the next start, so a destination could be given the dead-letter topic
 * the running daemon still writes raw dead letters to. */
START_TEST(test_reload_own_topics_in_force)
{
    pg_config *running = s_parse(BASE "dlq: {topic: ops-a-dlq}\naudit: {topic: ops-a-audit}\n");
    ck_assert_msg(running != NULL, "%s", s_err);
    ck_assert_int_eq(pg_config_check_reload(running, running, s_err, sizeof s_err), 0);
#define S_RELOAD_POLICY(topic)                                                                     \
    "policy:\n  version: T-2\n  agreements: [{name: A, description: a}]\n"                         \
    "  destinations: [{name: national, kind: national, topic: " topic ", agreement: A, "           \
    "max_classification: OFFICIAL, kinds: all}]\n" FORCE ADAPTER INTAKE STORE KAFKA
    pg_config *next = s_parse(S_RELOAD_POLICY("ops-a-dlq") "dlq: {topic: ops-a-dlq2}\n");
    ck_assert_msg(next != NULL, "%s", s_err); /* alone it passes --check-config */
    ck_assert_int_eq(pg_config_check_reload(running, next, s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_msg(strstr(s_err, "policy.destinations[0] (national): topic 'ops-a-dlq' is the "
                                "dead-letter topic still in force"),
                  "%s", s_err);
    pg_config_destroy(&next);
    next = s_parse(S_RELOAD_POLICY("ops-a-audit") "audit: {topic: ops-a-audit2}\n");
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_int_eq(pg_config_check_reload(running, next, s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_msg(strstr(s_err, "topic 'ops-a-audit' is the audit checkpoint topic still in "
                                "force"),
                  "%s", s_err);
    pg_config_destroy(&next);
    next = s_parse(
        "policy:\n  version: T-2\n  agreements: [{name: A, description: a}]\n"
        "  destinations: [{name: national, kind: national, topic: polegate.esx.national.pole.v1, "
        "agreement: A, max_classification: OFFICIAL, kinds: all}]\n"
        "  partners: [{force: MER, topic: ops-a-dlq, agreement: A}]\n" FORCE ADAPTER INTAKE STORE
            KAFKA "dlq: {topic: ops-a-dlq2}\n");
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_int_eq(pg_config_check_reload(running, next, s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_msg(strstr(s_err, "policy.partners[0] (MER): topic 'ops-a-dlq' is the dead-letter "
                                "topic still in force"),
                  "%s", s_err);
    pg_config_destroy(&next);
    /* another topic is fine, the changed dlq.topic waits for the start */
    next = s_parse(S_RELOAD_POLICY("polegate.esx.other.v1") "dlq: {topic: ops-a-dlq2}\n");
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_msg(!pg_config_check_reload(running, next, s_err, sizeof s_err), "%s", s_err);
    pg_config_destroy(&next);
    pg_config_destroy(&running);
}
END_TEST

/* Found by attack: a reload of changed rules under the running policy.version said
 * "policy T-1 unchanged" and kept the running rules, while a start with that file is
 * refused; the reload refuses it now, with the start's reason. */
START_TEST(test_reload_rules_changed_same_version)
{
    pg_config *running = s_parse(BASE);
    ck_assert_msg(running != NULL, "%s", s_err);
    /* comments, layout and quoting are not rules */
    pg_config *next = s_parse(
        "# a comment\npolicy:\n  version: 'T-1'\n  agreements:\n    - {name: A, description: a}\n"
        "  destinations: [{name: national, kind: national, topic: "
        "\"polegate.esx.national.pole.v1\", agreement: A, max_classification: OFFICIAL, "
        "kinds: all}]\n" FORCE ADAPTER INTAKE STORE KAFKA);
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_msg(!pg_config_check_reload(running, next, s_err, sizeof s_err), "%s", s_err);
    pg_config_destroy(&next);
    next = s_parse(
        "policy:\n  version: T-1\n  agreements: [{name: A, description: a}]\n"
        "  destinations: [{name: national, kind: national, topic: "
        "polegate.esx.national.pole.v1, agreement: A, max_classification: OFFICIAL-SENSITIVE, "
        "kinds: all}]\n" FORCE ADAPTER INTAKE STORE KAFKA);
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_int_eq(pg_config_check_reload(running, next, s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_msg(strstr(s_err, "policy.version T-1 did not change but its rules did (its "
                                "destinations are the same: "
                                "national=polegate.esx.national.pole.v1)"),
                  "%s", s_err);
    pg_config_destroy(&next);
    next = s_parse("policy:\n  version: T-1\n  agreements: [{name: A, description: a}]\n"
                   "  destinations: [{name: national, kind: national, topic: "
                   "polegate.esx.national.pole.v2, agreement: A, max_classification: OFFICIAL, "
                   "kinds: all}]\n" FORCE ADAPTER INTAKE STORE KAFKA);
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_int_eq(pg_config_check_reload(running, next, s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_msg(strstr(s_err, "policy.version T-1 did not change but its destinations did "
                                "(running: national=polegate.esx.national.pole.v1; now: "
                                "national=polegate.esx.national.pole.v2)"),
                  "%s", s_err);
    pg_config_destroy(&next);
    /* a new version is a change */
    next = s_parse(
        "policy:\n  version: T-2\n  agreements: [{name: A, description: a}]\n"
        "  destinations: [{name: national, kind: national, topic: "
        "polegate.esx.national.pole.v1, agreement: A, max_classification: OFFICIAL-SENSITIVE, "
        "kinds: all}]\n" FORCE ADAPTER INTAKE STORE KAFKA);
    ck_assert_msg(next != NULL, "%s", s_err);
    ck_assert_msg(!pg_config_check_reload(running, next, s_err, sizeof s_err), "%s", s_err);
    pg_config_destroy(&next);
    pg_config_destroy(&running);
}
END_TEST

START_TEST(test_log_levels)
{
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    pg_log_set_stream(mem);
    pg_log_set_level(PG_LOG_WARN);
    pg_log(PG_LOG_INFO, "hidden %d", 1);
    pg_log(PG_LOG_WARN, "shown %d", 2);
    pg_log(PG_LOG_ERROR, "also %s", "shown");
    /* a value with a newline cannot forge a line of its own */
    pg_log(PG_LOG_WARN, "reason: %s", "x\n2026-01-01T00:00:00.000Z polegated info: forged\x1b[2J");
    /* a C1 control as a single byte (a CSI to a terminal that reads 8-bit controls),
     * and bytes of no UTF-8 sequence, escaped; well-formed UTF-8 kept */
    pg_log(PG_LOG_WARN, "lone: %s",
           "\x9b"
           "2J \xff \xe2\x82 \xc3\xa9 \xe2\x82\xac");
    pg_log_set_level(PG_LOG_INFO);
    pg_log_set_stream(NULL);
    fclose(mem);
    ck_assert_ptr_null(strstr(out, "hidden"));
    ck_assert_ptr_nonnull(strstr(out, "polegated warn: shown 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "polegated error: also shown\n"));
    ck_assert_int_eq(out[4], '-'); /* starts with the UTC time */
    ck_assert_ptr_nonnull(strstr(
        out,
        "polegated warn: reason: x\\n2026-01-01T00:00:00.000Z polegated info: forged\\x1b[2J\n"));
    ck_assert_ptr_null(strstr(out, "\n2026-01-01T00:00:00.000Z polegated info: forged"));
    ck_assert_msg(
        strstr(out, "polegated warn: lone: \\x9b2J \\xff \\xe2\\x82 \xc3\xa9 \xe2\x82\xac\n"), "%s",
        out);
    free(out);
    ck_assert_int_eq(pg_log_level_parse("debug"), PG_LOG_DEBUG);
    ck_assert_int_eq(pg_log_level_parse("DEBUG"), -1);
}
END_TEST

/* log.format json and the journal's priority prefix. */
START_TEST(test_log_formats)
{
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    pg_log_set_stream(mem);
    pg_log_set_format(PG_LOG_JSON);
    pg_log(PG_LOG_WARN, "a \"quoted\" \\ tab\there, bad byte \xff, \xc3\xa9");
    pg_log_set_journal(1);
    pg_log(PG_LOG_ERROR, "in the journal");
    pg_log_set_format(PG_LOG_TEXT);
    pg_log(PG_LOG_INFO, "text in the journal");
    pg_log(PG_LOG_DEBUG, "hidden");
    pg_log_set_journal(0);
    pg_log_set_stream(NULL);
    fclose(mem);
    ck_assert_ptr_nonnull(strstr(out, "\",\"level\":\"warn\",\"program\":\"polegated\",\"msg\":"
                                      "\"a \\\"quoted\\\" \\\\ tab\\u0009here, bad byte "
                                      "\\ufffd, \xc3\xa9\"}\n"));
    ck_assert_int_eq(strncmp(out, "{\"time\":\"", 9), 0);
    ck_assert_ptr_nonnull(strstr(out, "\n<3>{\"time\":\""));
    ck_assert_ptr_nonnull(strstr(out,
                                 "\"level\":\"error\",\"program\":\"polegated\",\"msg\":\"in the "
                                 "journal\"}\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n<6>info: text in the journal\n"));
    ck_assert_ptr_null(strstr(out, "hidden"));
    free(out);
    ck_assert_int_eq(pg_log_format_parse("json"), PG_LOG_JSON);
    ck_assert_int_eq(pg_log_format_parse("JSON"), -1);
    s_bad(BASE "log:\n  format: xml\n", "log.format: 'xml' is not a log format (text, json)");
    unsetenv("JOURNAL_STREAM");
    ck_assert_int_eq(pg_log_stderr_is_journal(), 0);
    setenv("JOURNAL_STREAM", "1:1", 1);
    ck_assert_int_eq(pg_log_stderr_is_journal(), 0); /* not our stderr */
    unsetenv("JOURNAL_STREAM");
}
END_TEST

/* metrics.listen: HOST:PORT or [V6]:PORT; off when not given. */
START_TEST(test_metrics_listen)
{
    pg_config *cfg = s_parse(BASE);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_ptr_null(cfg->metrics_listen);
    pg_config_destroy(&cfg);
    static const char *const good[] = {"127.0.0.1:9464", "[::1]:9464", "0.0.0.0:0",
                                       "metrics.example:9464"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, BASE "metrics:\n  listen: '%s'\n", good[i]);
        cfg = s_parse(text);
        ck_assert_msg(cfg != NULL, "%s: %s", good[i], s_err);
        ck_assert_str_eq(cfg->metrics_listen, good[i]);
        pg_config_destroy(&cfg);
    }
    static const char *const bad[] = {"127.0.0.1", "127.0.0.1:", ":9464",        "127.0.0.1:70000",
                                      "::1:9464",  "[::1:9464",  "127.0.0.1:94x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512], want[128];
        snprintf(text, sizeof text, BASE "metrics:\n  listen: '%s'\n", bad[i]);
        snprintf(want, sizeof want, "metrics.listen: '%s' is not HOST:PORT", bad[i]);
        s_bad(text, want);
    }
}
END_TEST

static void s_note_key(void *arg, const char *section, const char *key)
{
    char *out = arg;
    strcat(out, section);
    strcat(out, ".");
    strcat(out, key);
    strcat(out, " ");
}

/* What a reload compares: every key whose value differs, the properties as a whole. */
/* The adapter's own settings sit beside its name, checked by its config map; the old
 * gateway key for the ATX id prefix is refused with where it went. */
START_TEST(test_adapter_settings)
{
    pg_config *cfg =
        s_parse(POLICY FORCE "adapter:\n  id_prefix: '42'\n  name: athena\n" INTAKE STORE KAFKA);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    int i = pg_adapter_setting_index(cfg->adapter, "id_prefix");
    ck_assert_int_ge(i, 0);
    ck_assert_str_eq(cfg->adapter_settings[i], "42");
    pg_config_destroy(&cfg);
    cfg = s_parse(BASE);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_ptr_null(cfg->adapter_settings[0]); /* the default */
    ck_assert_str_eq(pg_adapter_value(cfg->adapter, (const char *const *)cfg->adapter_settings, 0),
                     "9");
    pg_config_destroy(&cfg);
    s_bad(POLICY FORCE "adapter:\n  name: athena\n  id_prefix: 9a\n" INTAKE STORE KAFKA,
          "t.yaml:9: adapter.id_prefix: '9a' is not 1-4 digits");
    s_bad(POLICY FORCE "adapter:\n  name: niche\n  id_prefix: '9'\n" INTAKE STORE KAFKA,
          "unknown key 'id_prefix' in section 'adapter' (the niche adapter's settings: none)");
    s_bad(BASE "delivery:\n  atx_id_prefix: '9'\n",
          "delivery.atx_id_prefix: no longer a setting: the ATX id prefix is a setting of the "
          "athena adapter: adapter.id_prefix");
}
END_TEST

START_TEST(test_diff)
{
    pg_config *a = s_parse(BASE);
    ck_assert_msg(a != NULL, "%s", s_err);
    pg_config *b = s_parse(BASE "spool:\n  group_commit: 64\nlog:\n  level: debug\n");
    ck_assert_msg(b != NULL, "%s", s_err);
    pg_config *c = s_parse(POLICY FORCE ADAPTER INTAKE STORE
                           "kafka:\n  brokers: 127.0.0.1:19092\n  properties:\n"
                           "    linger.ms: 5\n");
    ck_assert_msg(c != NULL, "%s", s_err);
    char changed[512] = "";
    pg_config_diff(a, a, s_note_key, changed);
    ck_assert_str_eq(changed, "");
    pg_config_diff(a, b, s_note_key, changed);
    ck_assert_str_eq(changed, "spool.group_commit log.level ");
    changed[0] = 0;
    pg_config_diff(a, c, s_note_key, changed);
    ck_assert_str_eq(changed, "kafka.properties ");
    pg_config_destroy(&a);
    pg_config_destroy(&b);
    pg_config_destroy(&c);
}
END_TEST

/* Found by attack: the audit keys were read only at the daemon's start, so
 * --check-config (systemd's ExecStartPre) and a reload took a missing key, one others
 * can read, or one that is not hex, and the start then failed in a loop. They are read
 * with the configuration now, as the start reads them. */
START_TEST(test_audit_keys_read_with_the_config)
{
    char dir[] = "/tmp/pg-test-config-audit-XXXXXX", text[2048], hmac[128], sign[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(hmac, sizeof hmac, "%s/audit-hmac.key", dir);
    snprintf(sign, sizeof sign, "%s/audit-sign.key", dir);
#define S_AUDIT_CFG                                                                                \
    POLICY FORCE ADAPTER INTAKE STORE KAFKA "curve: {insecure: true}\n"                            \
                                            "audit: {path: %s/audit.log, key_file: %s, "           \
                                            "signing_key_file: %s}\n"
    snprintf(text, sizeof text, S_AUDIT_CFG, dir, hmac, sign);
    s_bad(text, "audit.key_file: ");
    ck_assert_msg(strstr(s_err, "No such file or directory"), "%s", s_err);
    ck_assert_msg(strstr(s_err, "audit.signing_key_file: "), "%s", s_err);
    ck_assert_int_eq(pg_audit_keygen(dir, s_err, sizeof s_err), 0);
    pg_config *cfg = s_parse(text);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    pg_config_destroy(&cfg);
    ck_assert_int_eq(chmod(hmac, 0640), 0);
    s_bad(text, "audit.key_file: ");
    ck_assert_int_eq(chmod(hmac, 0600), 0);
    FILE *f = fopen(sign, "w");
    fputs("not hex\n", f);
    fclose(f);
    s_bad(text, "audit.signing_key_file: ");
#undef S_AUDIT_CFG
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A CURVE secret key others can read is refused; a plain-text intake where other
 * hosts can reach it is refused even with curve.insecure; the warning says so. */
START_TEST(test_curve_keys_and_plain_text)
{
    char dir[] = "/tmp/pg-test-config-curve-XXXXXX", base[96], text[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(base, sizeof base, "%s/gw", dir);
    ck_assert_int_eq(pg_curve_keygen(base, s_err, sizeof s_err), 0);
    char key[128];
    snprintf(key, sizeof key, "%s.key", base);
    ck_assert_int_eq(chmod(key, 0640), 0);
    snprintf(text, sizeof text,
             POLICY FORCE ADAPTER INTAKE STORE KAFKA
             "curve: {secret_key_file: %s, intake_clients_file: %s.pub}\n",
             key, base);
    s_bad(text, "a secret key readable or writable by group or others (mode 640): chmod 600 it");
    ck_assert_int_eq(chmod(key, 0600), 0);
    pg_config *cfg = s_parse(text);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_uint_eq(strlen(cfg->curve_secret), 40);
    pg_config_destroy(&cfg);
    s_bad(POLICY FORCE ADAPTER "intake: {endpoint: 'tcp://0.0.0.0:5555'}\n" STORE KAFKA
                               "curve: {insecure: true}\n",
          "is reachable from other hosts: plain text is refused there even with curve.insecure");
    s_bad(POLICY FORCE ADAPTER INTAKE STORE KAFKA "curve: {insecure: false}\n",
          "intake.endpoint: plain text: give curve.secret_key_file");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Found by attack: files the daemon trusts that another user may change were taken. A
 * local user appended their key to a group-writable intake allow-list and the next
 * reload authorised it; a world-writable config file and store directory were taken
 * too. Refused now, like a secret key readable by others, when group or others may
 * write them or a user other than this one or root owns them. */
START_TEST(test_writable_trusted_files_refused)
{
    char dir[] = "/tmp/pg-test-config-writers-XXXXXX", base[96], key[128], pub[128], store[128],
         conf[128], text[2048];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(base, sizeof base, "%s/gw", dir);
    ck_assert_int_eq(pg_curve_keygen(base, s_err, sizeof s_err), 0);
    snprintf(key, sizeof key, "%s.key", base);
    snprintf(pub, sizeof pub, "%s.pub", base);
    snprintf(store, sizeof store, "%s/store", dir);
    snprintf(conf, sizeof conf, "%s/gw.yaml", dir);
    ck_assert_int_eq(mkdir(store, 0700), 0);
    snprintf(text, sizeof text,
             POLICY FORCE ADAPTER INTAKE KAFKA "store: {path: %s}\n"
                                               "curve: {secret_key_file: %s, intake_clients_file: "
                                               "%s}\n",
             store, key, pub);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(conf, 0640), 0);
    ck_assert_int_eq(chmod(pub, 0644), 0);
    pg_config *cfg = pg_config_load(conf, s_err, sizeof s_err);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    pg_config_destroy(&cfg);

    /* the allow-list: at start and --check-config (the config) and at a reload (read
     * again alone) */
    const struct {
        mode_t mode;
        uid_t uid;
        const char *want;
    } bad[] = {{0664, 0, "a file writable by group or others (mode 664)"},
               {0646, 0, "a file writable by group or others (mode 646)"},
               {0644, 65534, "a file owned by uid 65534, neither this user"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(chmod(pub, bad[i].mode), 0);
        ck_assert_int_eq(chown(pub, bad[i].uid, (gid_t)-1), 0);
        ck_assert_ptr_null(pg_config_load(conf, s_err, sizeof s_err));
        ck_assert_msg(strstr(s_err, "curve.intake_clients_file: client keys ") &&
                          strstr(s_err, bad[i].want),
                      "%s", s_err);
        ck_assert_ptr_null(pg_curve_allow_load(pub, s_err, sizeof s_err));
        ck_assert_msg(strstr(s_err, bad[i].want), "%s", s_err);
        ck_assert_int_eq(chown(pub, 0, (gid_t)-1), 0);
    }
    ck_assert_int_eq(chmod(pub, 0644), 0);

    /* the config file itself */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(chmod(conf, bad[i].mode), 0);
        ck_assert_int_eq(chown(conf, bad[i].uid, (gid_t)-1), 0);
        ck_assert_ptr_null(pg_config_load(conf, s_err, sizeof s_err));
        ck_assert_msg(strstr(s_err, conf) && strstr(s_err, bad[i].want), "%s", s_err);
        ck_assert_int_eq(chown(conf, 0, (gid_t)-1), 0);
    }
    ck_assert_int_eq(chmod(conf, 0600), 0);

    /* store.path */
    ck_assert_int_eq(chmod(store, 0777), 0);
    ck_assert_ptr_null(pg_config_load(conf, s_err, sizeof s_err));
    ck_assert_msg(strstr(s_err, "store.path: ") &&
                      strstr(s_err, "a directory writable by group or others (mode 777)"),
                  "%s", s_err);
    ck_assert_int_eq(chmod(store, 0750), 0);
    ck_assert_int_eq(chown(store, 65534, (gid_t)-1), 0);
    /* as root (an operator's `polegate dlq ... --config`), the daemon user's store is
     * taken; another user running it is refused (not testable as root) */
    cfg = pg_config_load(conf, s_err, sizeof s_err);
    ck_assert_msg(geteuid() != 0 || cfg != NULL, "%s", s_err);
    pg_config_destroy(&cfg);
    ck_assert_int_eq(chown(store, 0, (gid_t)-1), 0);
    cfg = pg_config_load(conf, s_err, sizeof s_err);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    pg_config_destroy(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static void s_count_warning(void *ud, const char *warning)
{
    (void)warning;
    (*(int *)ud)++;
}

/* Kafka secrets need not sit in the YAML (<property>_file, <property>_env); an
 * ssl.*.location that cannot be read is refused at load; a secret in a config file
 * others can read is warned about. */
START_TEST(test_kafka_secrets)
{
    char dir[] = "/tmp/pg-test-config-secret-XXXXXX", pw[128], yaml[128], text[2048];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(pw, sizeof pw, "%s/sasl.pw", dir);
    FILE *f = fopen(pw, "w");
    fputs("s3cret-from-file\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(pw, 0640), 0);
    setenv("PG_TEST_SASL_PASSWORD", "s3cret-from-env", 1);
    snprintf(text, sizeof text,
             POLICY FORCE ADAPTER INTAKE STORE KAFKA
             "  properties:\n"
             "    sasl.password_file: %s\n"
             "    ssl.key.password_env: PG_TEST_SASL_PASSWORD\n",
             pw);
    pg_config *cfg = s_parse(text);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    ck_assert_uint_eq(cfg->kafka_property_count, 2);
    ck_assert_str_eq(cfg->kafka_properties[0].key, "sasl.password");
    ck_assert_str_eq(cfg->kafka_properties[0].value, "s3cret-from-file");
    ck_assert_str_eq(cfg->kafka_properties[1].key, "ssl.key.password");
    ck_assert_str_eq(cfg->kafka_properties[1].value, "s3cret-from-env");
    ck_assert_int_eq(cfg->kafka_secret_inline, 0);
    pg_config_destroy(&cfg);
    /* a secret file others can read; an unset variable; an unreadable CA file */
    ck_assert_int_eq(chmod(pw, 0644), 0);
    s_bad(text, "a secret readable by others (mode 644)");
    s_bad(POLICY FORCE ADAPTER INTAKE STORE KAFKA
          "  properties: {sasl.password_env: PG_TEST_NOT_SET_ANYWHERE}\n",
          "the environment variable PG_TEST_NOT_SET_ANYWHERE is not set");
    s_bad(POLICY FORCE ADAPTER INTAKE STORE KAFKA
          "  properties: {ssl.ca.location: /nonexistent/ca.pem}\n",
          "kafka.properties.ssl.ca.location: /nonexistent/ca.pem: cannot be read");
    /* inline, in a file group and others can read: a warning */
    snprintf(yaml, sizeof yaml, "%s/gw.yaml", dir);
    f = fopen(yaml, "w");
    fputs(POLICY FORCE ADAPTER INTAKE STORE KAFKA "  properties: {sasl.password: inline}\n"
                                                  "curve: {insecure: true}\n",
          f);
    fclose(f);
    ck_assert_int_eq(chmod(yaml, 0644), 0);
    cfg = pg_config_load(yaml, s_err, sizeof s_err);
    ck_assert_msg(cfg != NULL, "%s", s_err);
    int warnings = 0;
    /* and the audit log's chain unkeyed: one more */
    ck_assert_int_eq(pg_config_warnings(cfg, s_count_warning, &warnings), 3);
    pg_config_destroy(&cfg);
    ck_assert_int_eq(chmod(yaml, 0600), 0);
    cfg = pg_config_load(yaml, s_err, sizeof s_err);
    ck_assert_int_eq(pg_config_warnings(cfg, s_count_warning, &warnings), 2); /* insecure */
    pg_config_destroy(&cfg);
    unsetenv("PG_TEST_SASL_PASSWORD");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_minimal_defaults);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_example_files);
    tcase_add_test(tc, test_curve_keys_and_plain_text);
    tcase_add_test(tc, test_writable_trusted_files_refused);
    tcase_add_test(tc, test_audit_keys_read_with_the_config);
    tcase_add_test(tc, test_kafka_secrets);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_bad_size);
    tcase_add_test(tc, test_missing_required);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_safety_properties);
    tcase_add_test(tc, test_yaml_syntax);
    tcase_add_test(tc, test_every_error_reported);
    tcase_add_test(tc, test_intake_directory);
    tcase_add_test(tc, test_intake_directory_apart_from_state);
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_reference_matches_docs);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_kafka_topic_gone);
    tcase_add_test(tc, test_policy_required);
    tcase_add_test(tc, test_policy_errors_reported);
    tcase_add_test(tc, test_audit_spool_dlq);
    tcase_add_test(tc, test_reload_own_topics_in_force);
    tcase_add_test(tc, test_reload_rules_changed_same_version);
    tcase_add_test(tc, test_diff);
    tcase_add_test(tc, test_adapter_settings);
    tcase_add_test(tc, test_log_formats);
    tcase_add_test(tc, test_metrics_listen);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

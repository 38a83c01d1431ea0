/* Kafka client settings for the CLI: --brokers, the daemon's --config and -X. */
#include "kafka_opts.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "polegate/error.h"

int pg_cli_kafka_add_x(pg_cli_kafka *k, const char *kv, const char *cmd)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "polegate %s: -X takes key=value, got '%s'\n", cmd, kv);
        return -1;
    }
    if (k->nx >= PG_CLI_KAFKA_MAX_X) {
        fprintf(stderr, "polegate %s: more than %d -X options\n", cmd, PG_CLI_KAFKA_MAX_X);
        return -1;
    }
    k->x[k->nx++] = kv;
    return 0;
}

/* The first error librdkafka logged. A broker refusing the SASL password or a TLS
 * handshake says so only in a log line, while the call that fails reports "transport
 * failure": the commands quote this line. The first, as retries log shorter lines
 * ("Disconnected", the reason without librdkafka's hint). Set from librdkafka's
 * threads. */
static pthread_mutex_t s_failure_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_failure[512];

static void s_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)fac;
    if (level > 3) /* LOG_ERR and worse; nothing is printed */
        return;
    pthread_mutex_lock(&s_failure_lock);
    if (!s_failure[0])
        snprintf(s_failure, sizeof s_failure, "%s", buf);
    pthread_mutex_unlock(&s_failure_lock);
}

const char *pg_cli_kafka_first_failure(char *buf, size_t size)
{
    pthread_mutex_lock(&s_failure_lock);
    snprintf(buf, size, "%s", s_failure[0] ? s_failure : "no broker error logged");
    pthread_mutex_unlock(&s_failure_lock);
    return buf;
}

static int s_set(rd_kafka_conf_t *conf, const char *key, const char *value, const char *cmd,
                 const char *where)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    /* the value is not printed: it may be a password */
    fprintf(stderr, "polegate %s: %s: kafka property %s: %s\n", cmd, where, key, why);
    return -1;
}

rd_kafka_conf_t *pg_cli_kafka_conf(const pg_cli_kafka *k, const char *cmd)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, s_log_cb);
    pg_config *cfg = NULL;
    int bad = 0;
    if (k->config) {
        char why[4096];
        if (!(cfg = pg_config_load(k->config, why, sizeof why))) {
            fprintf(stderr, "polegate %s: %s\n", cmd, why);
            bad = 1;
        }
        if (!bad && cfg->kafka_brokers)
            bad = s_set(conf, "bootstrap.servers", cfg->kafka_brokers, cmd, k->config);
        for (size_t i = 0; !bad && cfg && i < cfg->kafka_property_count; i++)
            bad = s_set(conf, cfg->kafka_properties[i].key, cfg->kafka_properties[i].value, cmd,
                        k->config);
    }
    if (!bad && k->brokers)
        bad = s_set(conf, "bootstrap.servers", k->brokers, cmd, "--brokers");
    for (size_t i = 0; !bad && i < k->nx; i++) {
        char key[256];
        const char *eq = strchr(k->x[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - k->x[i]), k->x[i]);
        bad = s_set(conf, key, eq + 1, cmd, "-X");
    }
    size_t len = 0;
    if (!bad && (rd_kafka_conf_get(conf, "bootstrap.servers", NULL, &len) != RD_KAFKA_CONF_OK ||
                 len <= 1)) {
        fprintf(stderr,
                "polegate %s: no brokers: give --brokers, --config FILE or "
                "-X bootstrap.servers=...\n",
                cmd);
        bad = 1;
    }
    pg_config_destroy(&cfg);
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

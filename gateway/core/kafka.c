/* pg_kafka: the Kafka client properties polegate fixes, and the check of what an
 * operator sets in kafka.properties. */
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <string.h>

#include "polegate/error.h"

/* Settings without which a record could be reordered, duplicated, lost on a leader
 * change, or land on another partition than a Java client would pick. */
static const pg_kafka_fixed s_fixed[] = {
    {"acks", "all", "-1", "a record counts as delivered only once every in-sync replica has it"},
    {"request.required.acks", "all", "-1",
     "a record counts as delivered only once every in-sync replica has it"},
    {"enable.idempotence", "true", NULL,
     "retries must neither duplicate nor reorder the updates of a key"},
    {"partitioner", "murmur2_random", NULL, "keys must map to the partitions Java clients compute"},
    {NULL, NULL, NULL, NULL},
};

const pg_kafka_fixed *pg_kafka_fixed_properties(void)
{
    return s_fixed;
}

int pg_kafka_check_property(const char *key, const char *value, char *errstr, size_t errstr_size)
{
    if (!strcmp(key, "bootstrap.servers") || !strcmp(key, "metadata.broker.list"))
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "set the brokers with kafka.brokers, not '%s'", key);
    for (size_t i = 0; s_fixed[i].key; i++) {
        if (strcmp(key, s_fixed[i].key))
            continue;
        if (!strcmp(value, s_fixed[i].value) ||
            (s_fixed[i].also && !strcmp(value, s_fixed[i].also)))
            return 0;
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is fixed to '%s' by polegate (%s) and cannot be '%s'; remove "
                       "it",
                       key, s_fixed[i].value, s_fixed[i].why, value);
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, why, sizeof why);
    rd_kafka_conf_destroy(conf);
    if (res != RD_KAFKA_CONF_OK)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "librdkafka: %s", why);
    return 0;
}

/* pg_consumer: a Kafka consumer group over the partners' topics (librdkafka), with
 * offsets committed only when the caller says the records behind them are done. */
#ifndef POLEGATE_GATEWAY_CONSUMER_H
#define POLEGATE_GATEWAY_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_config_kv pg_config_kv;

/*
 * Settings that are fixed: enable.auto.commit=false and enable.auto.offset.store=false
 * (nothing is committed behind the caller's back), isolation.level=read_committed (a
 * partner's aborted transactions are never seen), auto.offset.reset=earliest (a new
 * group reads what the partner shared before it existed). Every instance of one force
 * uses the same group id, so that the partitions are shared between them.
 *
 * Records polled are kept by the consumer until the next pg_consumer_poll (or
 * pg_consumer_release): the caller processes them in between. Pausing stops fetching
 * (and drops what was prefetched), while the caller keeps polling so that the group
 * membership stays alive: that is how a slow RMS holds back consumption without the
 * consumer leaving the group.
 */

typedef struct pg_consumer pg_consumer;

typedef struct pg_consumer_opts {
    const char *brokers;
    const char *group_id;
    /* Static membership (group.instance.id): a restarted instance gets its partitions
     * back at once instead of after the session timeout. NULL: dynamic. Unique per
     * instance (its store). */
    const char *instance_id;
    const char *const *topics; /* subscribed */
    size_t topic_count;
    /* Extra librdkafka properties (kafka.properties): the fixed ones above, and
     * producer-only ones, are not passed on. */
    const pg_config_kv *properties;
    size_t property_count;
} pg_consumer_opts;

/* One consumed record; borrowed from the consumer until the next poll. */
typedef struct pg_consumer_record {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key; /* NUL-terminated copy, or NULL */
    const uint8_t *value;
    size_t len;            /* value NULL: a tombstone */
    const char *type;      /* header pg-type, or NULL */
    const char *force;     /* header pg-origin-force, or NULL */
    const char *agreement; /* header pg-agreement, or NULL */
    /* header pg-version as a number; 0 when absent or not a decimal number (a
     * tombstone's says which DELETE it follows, docs/topics.md) */
    uint64_t version;
    /* The name of the first header above that was there but longer than the consumer
     * keeps (its field is then NULL), or NULL: a header that is there is never taken
     * for one that is not. */
    const char *overlong;
} pg_consumer_record;

/* A consumer subscribed to opts->topics. NULL with errstr on a bad property. */
pg_consumer *pg_consumer_new(const pg_consumer_opts *opts, char *errstr, size_t errstr_size);
/* Leaves the group (committing nothing more) and frees; sets *p NULL; NULL-safe. */
void pg_consumer_destroy(pg_consumer **p);

/* Wait up to timeout_ms for the first record, then take what is there without
 * waiting, at most max, into out (valid until the next poll or release). The number of
 * records, or negative with errstr on a fatal consumer error (a partition's error, such
 * as a topic that does not exist yet, is logged and skipped). */
int pg_consumer_poll(pg_consumer *self, pg_consumer_record *out, size_t max, int timeout_ms,
                     char *errstr, size_t errstr_size);
/* Free the records of the last poll. */
void pg_consumer_release(pg_consumer *self);

/* Pause (1) or resume (0) fetching from every assigned partition. 0 or PG_EKAFKA. */
int pg_consumer_pause(pg_consumer *self, int pause);
int pg_consumer_paused(const pg_consumer *self);

/* Remember that (topic, partition) is done up to next_offset (the offset of the next
 * record to read); committed by pg_consumer_commit. */
int pg_consumer_mark(pg_consumer *self, const char *topic, int32_t partition, int64_t next_offset);
/* Commit what was marked since the last commit (async: 0, or sync with errors
 * reported). 0, or PG_EKAFKA with errstr. */
int pg_consumer_commit(pg_consumer *self, int sync, char *errstr, size_t errstr_size);

/* For each topic with partitions assigned to this consumer, fn(ud, topic, lag): the
 * messages between the group's committed offsets and the last stable offsets, summed
 * over its partitions, as of librdkafka's last statistics (once a second); -1 when not
 * known. Returns 1 when the consumer is a member of its group (it has a member id),
 * else 0. On the thread that polls the consumer. */
int pg_consumer_lag(pg_consumer *self, void (*fn)(void *ud, const char *topic, int64_t lag),
                    void *ud);

#endif

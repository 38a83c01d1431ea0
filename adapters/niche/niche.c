/* Placeholder for the niche adapter until it lands: rejects everything. */
#include "polegate/adapter.h"
#include "polegate/error.h"

static int s_decode(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size,
                    pg_changeset *cs, char *errstr, size_t errstr_size)
{
    (void)ctx, (void)data, (void)size, (void)cs;
    return pg_errf(PG_EUNSUPPORTED, errstr, errstr_size, "nx5: not implemented yet");
}

static int s_encode(const pg_adapter_ctx *ctx, const pg_changeset *cs, pg_buf *out,
                    char *errstr, size_t errstr_size)
{
    (void)ctx, (void)cs, (void)out;
    return pg_errf(PG_EUNSUPPORTED, errstr, errstr_size, "nx5: not implemented yet");
}

static int s_split(const uint8_t *data, size_t size, pg_split_fn fn, void *arg)
{
    return fn(arg, data, size, 1);
}

const pg_adapter_ops pg_adapter_niche = {
    .name = "niche",
    .format = "nx5",
    .system = "NICHE",
    .max_message_size = 8388608,
    .decode = s_decode,
    .encode = s_encode,
    .split = s_split,
};

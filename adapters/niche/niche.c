/* The Niche-like RMS adapter: NX5 XML documents <-> canonical changes. */
#include "nx5.h"
#include "polegate/adapter.h"

/* A file holds one NX5 document. */
static int s_split(const uint8_t *data, size_t size, pg_split_fn fn, void *arg)
{
    return fn(arg, data, size, 1);
}

const pg_adapter_ops pg_adapter_niche = {
    .name = "niche",
    .format = "nx5",
    .system = "NICHE",
    .max_message_size = PG_NX5_MAX_SIZE,
    .decode = pg_nx5_decode,
    .encode = pg_nx5_encode,
    .split = s_split,
};

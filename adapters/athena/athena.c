/* The Athena-like RMS adapter: ATX/2 JSON (docs/formats/athena-atx2.md) behind pg_adapter_ops. */
#include "atx.h"
#include "polegate/adapter.h"

/* NDJSON: one message a line, "\n" or "\r\n" ends, blank lines skipped; pos is the
 * 1-based line number so a reason can point at the line of the file. */
static int s_split(const uint8_t *data, size_t size, pg_split_fn fn, void *arg)
{
    size_t line = 0, i = 0;
    while (i < size) {
        size_t start = i;
        while (i < size && data[i] != '\n')
            i++;
        size_t end = i;
        line++;
        if (i < size)
            i++; /* past '\n' */
        if (end > start && data[end - 1] == '\r')
            end--;
        size_t s = start;
        while (s < end && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r'))
            s++;
        if (s == end)
            continue; /* blank */
        int rc = fn(arg, data + start, end - start, line);
        if (rc)
            return rc;
    }
    return 0;
}

const pg_adapter_ops pg_adapter_athena = {
    .name = "athena",
    .format = "atx",
    .system = PG_ATX_SYSTEM,
    .max_message_size = PG_ATX_MAX_MESSAGE,
    .decode = pg_atx_decode,
    .encode = pg_atx_encode,
    .split = s_split,
};

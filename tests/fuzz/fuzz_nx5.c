/* libFuzzer harness: the NX5 decoder, and encode/decode reaching a fixed point. */
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every input: decode must return 0 or a reason, never crash. A document that decodes
 * must encode (round-trip mode: no idmap), and from then on NX5 -> canonical -> NX5
 * must be stable: the second text equals the first and decodes to the same changes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pg_changeset *a = pg_changeset_new(), *b = pg_changeset_new(), *c = pg_changeset_new();
    pg_buf t1 = PG_BUF_INIT, t2 = PG_BUF_INIT;
    char err[PG_ERRSTR_SIZE];
    pg_adapter_ctx ctx = {.now_ms = 1792888800000, .batch = "fuzz"};
    int rc = pg_adapter_niche.decode(NULL, data, size, a, err, sizeof err);
    PG_FUZZ_ASSERT(rc == 0 || rc == PG_EINVALID || rc == PG_ETOOBIG, "decode rc %d", rc);
    PG_FUZZ_ASSERT(rc == 0 || (err[0] && a->count == 0), "no reason or partial output");
    if (rc == 0) {
        rc = pg_adapter_niche.encode(&ctx, a, &t1, err, sizeof err);
        PG_FUZZ_ASSERT(rc == 0, "a decoded document does not encode: %s", err);
        rc = pg_adapter_niche.decode(NULL, t1.data, t1.len, b, err, sizeof err);
        PG_FUZZ_ASSERT(rc == 0, "our own NX5 does not decode: %s\n%s", err, (char *)t1.data);
        rc = pg_adapter_niche.encode(&ctx, b, &t2, err, sizeof err);
        PG_FUZZ_ASSERT(rc == 0, "second encode: %s", err);
        PG_FUZZ_ASSERT(t1.len == t2.len && memcmp(t1.data, t2.data, t1.len) == 0,
                       "not a fixed point:\n%s\n----\n%s", (char *)t1.data, (char *)t2.data);
        rc = pg_adapter_niche.decode(NULL, t2.data, t2.len, c, err, sizeof err);
        PG_FUZZ_ASSERT(rc == 0 && pg_fuzz_same(b, c), "changes differ after a round trip");
    }
    pg_buf_free(&t1);
    pg_buf_free(&t2);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&b);
    pg_changeset_destroy(&c);
    return 0;
}

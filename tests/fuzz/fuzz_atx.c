/* libFuzzer harness: the ATX decoder, and what it accepts carried on into both encoders. */
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every input: the ATX decoder returns 0 or a reason. What it accepts, ATX encodes
 * (round-trip ids); and NX5 either encodes it, which must then decode as NX5, or
 * refuses with a reason (e.g. a record NX5 cannot name). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pg_changeset *a = pg_changeset_new(), *n = pg_changeset_new();
    pg_buf out = PG_BUF_INIT;
    char err[PG_ERRSTR_SIZE];
    pg_idmap idmap = {.resolve = pg_fuzz_gid_resolve};
    pg_adapter_ctx ctx = {.now_ms = 1792888800000, .batch = "fuzz"};
    int rc = pg_adapter_athena.decode(NULL, data, size, a, err, sizeof err);
    PG_FUZZ_ASSERT(rc == 0 || rc == PG_EINVALID || rc == PG_ETOOBIG, "atx decode rc %d", rc);
    PG_FUZZ_ASSERT(rc == 0 || (err[0] && a->count == 0), "no reason or partial output");
    if (rc == 0) {
        rc = pg_adapter_athena.encode(&ctx, a, &out, err, sizeof err);
        PG_FUZZ_ASSERT(rc == 0 || rc == PG_EUNSUPPORTED, "atx encode rc %d: %s", rc, err);
        pg_buf_reset(&out);
        ctx.idmap = &idmap;
        rc = pg_adapter_niche.encode(&ctx, a, &out, err, sizeof err);
        PG_FUZZ_ASSERT(rc == 0 || rc == PG_EUNSUPPORTED, "nx5 encode rc %d: %s", rc, err);
        if (rc == 0) {
            rc = pg_adapter_niche.decode(NULL, out.data, out.len, n, err, sizeof err);
            PG_FUZZ_ASSERT(rc == 0, "our own NX5 does not decode: %s\n%s", err, (char *)out.data);
        }
    }
    pg_buf_free(&out);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&n);
    return 0;
}

/* pbjson_dump: writes each pbjson sample as "name TAB type TAB packed-hex TAB json",
 * for pbjson_check.py to compare with Google's own JSON mapping. */
#include <stdio.h>
#include <stdlib.h>

#include "pbjson_samples.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/pbjson.h"

int main(void)
{
    pg_arena *a = pg_arena_new(0);
    pg_sample samples[PG_SAMPLES_MAX];
    size_t n = a ? pg_samples_build(a, samples) : 0;
    if (!n) {
        fprintf(stderr, "pbjson_dump: out of memory\n");
        return 1;
    }
    pg_buf json = PG_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const ProtobufCMessage *m = samples[i].msg;
        size_t size = protobuf_c_message_get_packed_size(m);
        uint8_t *packed = malloc(size ? size : 1);
        if (!packed)
            rc = PG_ENOMEM;
        else if (protobuf_c_message_pack(m, packed) != size)
            rc = PG_EINTERNAL;
        pg_buf_reset(&json);
        if (!rc)
            rc = pg_pbjson_encode(m, &json);
        if (!rc) {
            printf("%s\t%s\t", samples[i].name, m->descriptor->name);
            for (size_t k = 0; k < size; k++)
                printf("%02x", packed[k]);
            printf("\t%s\n", (const char *)json.data);
        } else {
            fprintf(stderr, "pbjson_dump: %s: %s\n", samples[i].name, pg_strerror(rc));
        }
        free(packed);
    }
    pg_buf_free(&json);
    pg_arena_destroy(&a);
    return rc ? 1 : 0;
}

/* The adapters this build knows, by name or format. */
#include <string.h>

#include "polegate/adapter.h"

static const pg_adapter_ops *const s_adapters[] = {&pg_adapter_athena, &pg_adapter_niche};

const pg_adapter_ops *pg_adapter_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof s_adapters / sizeof s_adapters[0]; i++) {
        const pg_adapter_ops *a = s_adapters[i];
        if (strcmp(a->name, name) == 0 || strcmp(a->format, name) == 0)
            return a;
    }
    return NULL;
}

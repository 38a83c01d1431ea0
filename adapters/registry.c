/* The adapters this build knows, by name, format or file extension. */
#include <string.h>

#include "polegate/adapter.h"

static const pg_adapter_ops *const s_adapters[] = {&pg_adapter_athena, &pg_adapter_niche};
#define S_NADAPTERS (sizeof s_adapters / sizeof s_adapters[0])

const pg_adapter_ops *pg_adapter_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < S_NADAPTERS; i++) {
        const pg_adapter_ops *a = s_adapters[i];
        if (strcmp(a->name, name) == 0 || strcmp(a->format, name) == 0)
            return a;
    }
    return NULL;
}

const pg_adapter_ops *pg_adapter_for_system(const char *system)
{
    for (size_t i = 0; system && i < S_NADAPTERS; i++)
        if (strcmp(s_adapters[i]->system, system) == 0)
            return s_adapters[i];
    return NULL;
}

const pg_adapter_ops *pg_adapter_at(size_t i)
{
    return i < S_NADAPTERS ? s_adapters[i] : NULL;
}

const pg_adapter_ops *pg_adapter_for_file(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot)
        return NULL;
    for (size_t i = 0; i < S_NADAPTERS; i++)
        for (const char *const *x = s_adapters[i]->extensions; x && *x; x++)
            if (!strcmp(dot + 1, *x))
                return s_adapters[i];
    return NULL;
}

/* The adapter interface's helpers: an adapter's own settings (its config map). */
#include <stdio.h>
#include <string.h>

#include "polegate/adapter.h"
#include "polegate/error.h"

int pg_adapter_setting_index(const pg_adapter_ops *adapter, const char *key)
{
    for (int i = 0; adapter->settings && adapter->settings[i].key; i++)
        if (!strcmp(adapter->settings[i].key, key))
            return i;
    return -1;
}

const char *pg_adapter_value(const pg_adapter_ops *adapter, const char *const *values, int i)
{
    return values && values[i] ? values[i] : adapter->settings[i].def;
}

int pg_adapter_check_values(const pg_adapter_ops *adapter, const char *const *values, char *errstr,
                            size_t errstr_size)
{
    for (int i = 0; values && adapter->settings && adapter->settings[i].key; i++) {
        const pg_adapter_setting *s = &adapter->settings[i];
        char why[PG_ERRSTR_SIZE];
        if (values[i] && s->check && s->check(values[i], why, sizeof why))
            return pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: %s", s->key, why);
    }
    return 0;
}

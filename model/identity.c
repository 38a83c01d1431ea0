/* Name-based (v5, SHA-1) UUIDs for entities and links. */
#include "polegate/identity.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include "polegate/error.h"
#include "polegate/pole.h"

static uuid_t s_namespace;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_parse_namespace(void)
{
    uuid_parse(PG_IDENTITY_NAMESPACE, s_namespace); /* a constant: cannot fail */
}

static int s_part_ok(const char *s)
{
    return s && *s && !strchr(s, '/');
}

static void s_v5(const char *name, size_t len, char out[PG_UUID_STR_SIZE])
{
    uuid_t u;
    pthread_once(&s_once, s_parse_namespace);
    uuid_generate_sha1(u, s_namespace, name, len);
    uuid_unparse_lower(u, out);
}

int pg_identity_entity(const char *force, const char *system, const char *native_type,
                       const char *native_id, char out[PG_UUID_STR_SIZE])
{
    char name[512];
    if (!s_part_ok(force) || !s_part_ok(system) || !s_part_ok(native_type) || !s_part_ok(native_id))
        return PG_EINVALID;
    int n = snprintf(name, sizeof name, "%s/%s/%s/%s", force, system, native_type, native_id);
    if (n < 0 || (size_t)n >= sizeof name)
        return PG_EINVALID;
    s_v5(name, (size_t)n, out);
    return 0;
}

int pg_identity_link(const char *from_uuid, int role, const char *to_uuid,
                     char out[PG_UUID_STR_SIZE])
{
    char name[160];
    const char *r = pg_enum_short(&polegate__pole__v1__link_role__descriptor, role);
    if (!r || role == 0 || !s_part_ok(from_uuid) || !s_part_ok(to_uuid))
        return PG_EINVALID;
    int n = snprintf(name, sizeof name, "link/%s/%s/%s", from_uuid, r, to_uuid);
    if (n < 0 || (size_t)n >= sizeof name)
        return PG_EINVALID;
    s_v5(name, (size_t)n, out);
    return 0;
}

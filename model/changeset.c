/* Changesets, arena-allocated protobuf-c messages, enum names and repeated references. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/pole.h"

void *pg_pb_new(pg_arena *arena, const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = pg_arena_alloc(arena, desc->sizeof_message);
    if (m)
        desc->message_init(m);
    return m;
}

static void *s_arena_alloc(void *data, size_t size)
{
    return pg_arena_alloc(data, size);
}

static void s_arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* freed with the arena */
}

void pg_pb_arena_allocator(pg_arena *arena, ProtobufCAllocator *out)
{
    out->alloc = s_arena_alloc;
    out->free = s_arena_free;
    out->allocator_data = arena;
}

pg_changeset *pg_changeset_new(void)
{
    pg_changeset *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->arena = pg_arena_new(0);
    if (!self->arena) {
        free(self);
        return NULL;
    }
    return self;
}

void pg_changeset_destroy(pg_changeset **p)
{
    if (!p || !*p)
        return;
    pg_changeset *self = *p;
    pg_arena_destroy(&self->arena);
    free(self->changes);
    free(self);
    *p = NULL;
}

void pg_changeset_reset(pg_changeset *self)
{
    pg_arena_reset(self->arena);
    self->count = 0;
    self->message_id = self->force = self->system = NULL;
}

static int s_add(pg_changeset *self, pg_change change)
{
    if (pg_grow((void **)&self->changes, &self->cap, self->count + 1, sizeof *self->changes))
        return PG_ENOMEM;
    self->changes[self->count++] = change;
    return 0;
}

int pg_changeset_add_entity(pg_changeset *self, pg_entity_update *entity, int replaces_links)
{
    return s_add(
        self,
        (pg_change){.type = PG_CHANGE_ENTITY, .entity = entity, .replaces_links = replaces_links});
}

int pg_changeset_add_link(pg_changeset *self, pg_link_update *link)
{
    return s_add(self, (pg_change){.type = PG_CHANGE_LINK, .link = link});
}

const char *pg_enum_short(const ProtobufCEnumDescriptor *desc, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(desc, value);
    if (!v)
        return NULL;
    /* v->name is the value name with the enum's prefix: "LINK_ROLE_HOME_ADDRESS".
     * The prefix is the upper-snake enum name, i.e. up to the first value's common
     * prefix; every enum here is prefixed by its own name plus '_'. */
    size_t plen = 0;
    const char *first = desc->values[0].name; /* *_UNSPECIFIED */
    const char *u = strstr(first, "UNSPECIFIED");
    if (u)
        plen = (size_t)(u - first);
    if (strncmp(v->name, first, plen) != 0)
        return v->name;
    return v->name + plen;
}

typedef struct s_refs {
    pg_entity_ref *const *refs;
    int by_id;
} s_refs;

static const char *s_ref_key(const s_refs *r, size_t i)
{
    const char *k = r->by_id ? r->refs[i]->id : r->refs[i]->native_id;
    return k ? k : "";
}

static int s_ref_cmp(const void *a, const void *b, void *arg)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(s_ref_key(arg, x), s_ref_key(arg, y));
    return c ? c : (x > y) - (x < y);
}

int pg_refs_first_repeat(pg_entity_ref *const *refs, size_t n, int by_id, pg_arena *arena,
                         size_t *first)
{
    *first = SIZE_MAX;
    if (n < 2)
        return 0;
    size_t *pos = pg_arena_alloc(arena, n * sizeof(*pos));
    if (!pos)
        return PG_ENOMEM;
    for (size_t i = 0; i < n; i++)
        pos[i] = i;
    s_refs r = {refs, by_id};
    qsort_r(pos, n, sizeof(*pos), s_ref_cmp, &r);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s_ref_key(&r, pos[i]), s_ref_key(&r, pos[i - 1])) == 0 && pos[i] < *first)
            *first = pos[i];
    return 0;
}

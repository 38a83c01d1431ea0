/* The canonical POLE model in C: short names for the generated protobuf-c types,
 * and the changeset an adapter fills from one native message. */
#ifndef POLEGATE_POLE_H
#define POLEGATE_POLE_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/arena.h"
#include "polegate/pole/v1/pole.pb-c.h"

typedef Polegate__Pole__V1__EntityUpdate pg_entity_update;
typedef Polegate__Pole__V1__LinkUpdate pg_link_update;
typedef Polegate__Pole__V1__EntityRef pg_entity_ref;
typedef Polegate__Pole__V1__Origin pg_origin;
typedef Polegate__Pole__V1__Marking pg_marking;
typedef Polegate__Pole__V1__Retention pg_retention;
typedef Polegate__Pole__V1__Date pg_date;
typedef Google__Protobuf__Timestamp pg_timestamp;

/* Marking.caveat is 0-500 characters (pole.proto): the model's limit, whatever a
 * native format allows. */
#define PG_CAVEAT_MAX_CHARS 500

/* A new protobuf-c message of type desc, initialised, owned by the arena. NULL when
 * out of memory. */
void *pg_pb_new(pg_arena *arena, const ProtobufCMessageDescriptor *desc);
#define PG_PB_NEW(arena, type, lower) ((type *)pg_pb_new((arena), &lower##__descriptor))

/* A protobuf-c allocator that allocates from the arena and never frees: unpacked
 * messages then live exactly as long as the arena's current contents. */
void pg_pb_arena_allocator(pg_arena *arena, ProtobufCAllocator *out);

typedef enum pg_change_type {
    PG_CHANGE_ENTITY = 1,
    PG_CHANGE_LINK = 2,
} pg_change_type;

typedef struct pg_change {
    pg_change_type type;
    pg_entity_update *entity; /* PG_CHANGE_ENTITY */
    pg_link_update *link;     /* PG_CHANGE_LINK */
    /* PG_CHANGE_ENTITY only: the link changes of this changeset from this entity are
     * all of its outbound links now, and any other link it had is gone (an ATX
     * UPSERT). 0 when links change one at a time (NX5). */
    int replaces_links;
} pg_change;

/* The canonical changes of one native message, in the order the message states them
 * (NX5 applies elements in document order). The arena owns every message and string
 * the changes point at. */
typedef struct pg_changeset {
    pg_arena *arena;
    pg_change *changes;
    size_t count;
    size_t cap;
    const char *message_id; /* ATX header.messageId, NX5 Batch; arena-owned */
    const char *force;      /* origin force of the message */
    const char *system;     /* "ATHENA" / "NICHE" */
} pg_changeset;

/* NULL when out of memory. */
pg_changeset *pg_changeset_new(void);
/* Frees the changeset and its arena; sets *p to NULL; NULL-safe. */
void pg_changeset_destroy(pg_changeset **p);
/* Drop every change and everything in the arena, keeping memory for reuse. */
void pg_changeset_reset(pg_changeset *self);
/* Append a change. The changeset does not copy the message: allocate it from
 * cs->arena. 0 or PG_ENOMEM. */
int pg_changeset_add_entity(pg_changeset *self, pg_entity_update *entity, int replaces_links);
int pg_changeset_add_link(pg_changeset *self, pg_link_update *link);

/* Names of enum values as the proto spells them without the type prefix, e.g.
 * pg_enum_short(&polegate__pole__v1__link_role__descriptor, 1) -> "HOME_ADDRESS".
 * NULL for values the enum does not have. */
const char *pg_enum_short(const ProtobufCEnumDescriptor *desc, int value);

/* The first of refs[0..n) (in their order) whose native_id (by_id: id; NULL reads as
 * "") an earlier one has: its index in *first (SIZE_MAX when none), found by sorting
 * positions (arena memory), not by comparing every pair. 0, or PG_ENOMEM. */
int pg_refs_first_repeat(pg_entity_ref *const *refs, size_t n, int by_id, pg_arena *arena,
                         size_t *first);

#endif

/* The NX5 decoder's inside, shared by nx5_decode.c (values, structure, Entity, Link,
 * the document) and nx5_decode_kinds.c (each Kind's children); no other file
 * includes it. */
#ifndef POLEGATE_NX5_DEC_H
#define POLEGATE_NX5_DEC_H

#include <stddef.h>
#include <stdint.h>

#include "nx5.h"
#include "polegate/arena.h"
#include "polegate/pole.h"

#define PB(type, lower) PG_PB_NEW(d->a, Polegate__Pole__V1__##type, polegate__pole__v1__##lower)
#define EK(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x

/* One Entity element, remembered for the links: what kind its GID is and the
 * marking a link from it carries. */
typedef struct pg_nx5_known {
    const char *gid;
    int kind;
    int kind_certain; /* 0: a Property Delete, which does not say item or weapon */
    size_t pos;       /* element position in the document */
    size_t entity_no; /* Entity[n] */
    const char *nx5_kind;
    pg_entity_update *eu;
} pg_nx5_known;

/* The Entity elements of one GID, after all entities are read: the links look their
 * ends up here, once per GID however many elements repeat it. */
typedef struct pg_nx5_gid {
    const pg_nx5_known *first; /* in document order: [first, first + n) */
    size_t n;
    const pg_nx5_known *says; /* the one that says the kind: the first that is certain,
                                 else the first */
} pg_nx5_gid;

typedef struct pg_nx5_dec {
    pg_arena *a;
    char *errstr;
    size_t errstr_size;
    const char *force;
    const char *batch;
    char elem[32];  /* "Entity[3]": for the element's own attributes */
    char where[64]; /* "Entity[3] GID=7F3A9C2E4B1D0A66": for its children */
    int ref_year;   /* year of Modified: the PNC century rule */
    pg_nx5_known *known;
    size_t n_known;
    pg_nx5_gid *gids; /* by GID, once the kinds are settled */
    size_t n_gids;
    size_t *pos_of; /* element position of each change this call added */
} pg_nx5_dec;

enum { PG_NX5_TEXT, PG_NX5_LINE, PG_NX5_EMPTY, PG_NX5_GROUP };

typedef struct pg_nx5_child {
    const char *name;
    int max;              /* 0: any number */
    int content;          /* PG_NX5_TEXT: non-empty text; PG_NX5_LINE: text, may be empty;
                             PG_NX5_EMPTY: attributes only; PG_NX5_GROUP: child elements */
    const char *attrs[3]; /* the attributes it may have */
} pg_nx5_child;

typedef int (*pg_nx5_body_fn)(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu);

__attribute__((format(printf, 3, 4))) int pg_nx5__fail(pg_nx5_dec *d, const char *path,
                                                       const char *fmt, ...);
int pg_nx5__nomem(pg_nx5_dec *d);
int pg_nx5__digits(const char *s, size_t n);
int pg_nx5__blank(const char *s);
int pg_nx5__num(const char *s, size_t n);
int pg_nx5__plain_uint(const char *s, size_t max_digits, uint64_t *out);
int pg_nx5__date_shape(const char *s, int *y, int *m, int *dd);
int pg_nx5__local_time(pg_nx5_dec *d, const char *path, const char *s, pg_timestamp **out,
                       int *year);
int pg_nx5__code(pg_nx5_dec *d, const char *path, const pg_nx5_table *t, const char *s, int *out);
int pg_nx5__check_children(pg_nx5_dec *d, const pg_nx5_node *parent, const char *what,
                           const pg_nx5_child *spec, const pg_nx5_child *also_spec,
                           const char *prefix);
const pg_nx5_node *pg_nx5__child_named(const pg_nx5_node *n, const char *name);
const char *pg_nx5__text(const pg_nx5_node *n, const char *name);
size_t pg_nx5__count(const pg_nx5_node *n, const char *name);
char *pg_nx5__str(const char *s);
void pg_nx5__path(pg_nx5_dec *d, char *out, size_t size, const char *label);
/* The children an Alias may have. */
extern const pg_nx5_child pg_nx5__alias[];
/* The decoder of the children of Kind i (in the order of the Kinds table); NULL past
 * the last. */
pg_nx5_body_fn pg_nx5__body(size_t i);

#endif

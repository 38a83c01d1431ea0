/* pg_policy's inside, shared by policy_parse.c (reading the `policy:` section) and
 * policy.c (deciding); no other file includes it. */
#ifndef POLEGATE_GATEWAY_POLICY_INT_H
#define POLEGATE_GATEWAY_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define PG_POLICY_BIT(field) (1u << PG_POLICY_FIELD_##field)
#define PG_POLICY_KIND_MAX POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE
/* Redaction masks and header texts are kept per entity kind (1..PG_POLICY_KIND_MAX) and for
 * links, in this slot. */
#define PG_POLICY_SLOT_LINK (PG_POLICY_KIND_MAX + 1)
#define PG_POLICY_SLOTS (PG_POLICY_SLOT_LINK + 1)
#define PG_POLICY_ALL_KINDS (((1u << (PG_POLICY_KIND_MAX + 1)) - 1) & ~1u)
#define PG_POLICY_ALL_MOPI 0x1fu /* groups 1-4 and records without a group */

/* The entity kind a field belongs to; 0: every kind and links. */
int pg_policy__field_kind(pg_policy_field f);

typedef struct pg_policy_pos {
    int line, col; /* 1-based; 0 when unknown */
} pg_policy_pos;

typedef struct pg_policy_agreement_def {
    const char *name;
    const char *description;
    pg_policy_pos pos;
} pg_policy_agreement_def;

/* Keys of a destination, in the order of s_dest_keys (positions are kept per key). */
enum {
    PG_POLICY_DK_NAME,
    PG_POLICY_DK_KIND,
    PG_POLICY_DK_FORCE,
    PG_POLICY_DK_TOPIC,
    PG_POLICY_DK_AGREEMENT,
    PG_POLICY_DK_MAX_CLASSIFICATION,
    PG_POLICY_DK_ALLOW_HANDLING_C,
    PG_POLICY_DK_HANDLING_C_AGREEMENT,
    PG_POLICY_DK_KINDS,
    PG_POLICY_DK_REDACT,
    PG_POLICY_DK_MOPI_GROUPS,
    PG_POLICY_DK_COUNT
};

typedef struct pg_policy_dest_def {
    pg_policy_destination pub; /* first: a pub pointer is an pg_policy_dest_def pointer */
    uint32_t slot_redact[PG_POLICY_SLOTS];
    const char *slot_text[PG_POLICY_SLOTS];
    pg_policy_pos pos;                         /* the destination's first key */
    pg_policy_pos key_pos[PG_POLICY_DK_COUNT]; /* each key's value, when given */
} pg_policy_dest_def;

enum {
    PG_POLICY_PK_FORCE,
    PG_POLICY_PK_TOPIC,
    PG_POLICY_PK_AGREEMENT,
    PG_POLICY_PK_SPEAKS_FOR,
    PG_POLICY_PK_MAX_CLASSIFICATION,
    PG_POLICY_PK_COUNT
};

typedef struct pg_policy_partner_def {
    pg_policy_partner pub;
    pg_policy_pos pos;
    pg_policy_pos key_pos[PG_POLICY_PK_COUNT];
} pg_policy_partner_def;

struct pg_policy {
    pg_arena *arena; /* owns everything below */
    const char *version;
    char digest[65];    /* SHA-256 of the section's rules, hex (pg_policy_digest) */
    char digest_v1[65]; /* the same as releases before 2026-12-07 made it */
    const char *force;
    pg_policy_agreement_def *agreements;
    size_t n_agreements;
    pg_policy_dest_def *dests;
    size_t n_dests;
    pg_policy_partner_def *partners;
    size_t n_partners;
};

#endif

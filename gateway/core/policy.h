/* pg_policy: what may be shared with whom. Parses the `policy:` section of a force
 * config, decides per record and destination (share a redacted copy, or withhold with
 * a reason), says when a destination must be sent a withdrawal, fills the provenance
 * headers, and checks what partners may send us. The model and the YAML keys are in
 * docs/policy.md.
 *
 * A pg_policy is immutable once parsed: every function here may be called from any
 * thread at the same time. A policy reload builds a new pg_policy. */
#ifndef POLEGATE_GATEWAY_POLICY_H
#define POLEGATE_GATEWAY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/arena.h"
#include "polegate/pole.h"

struct fy_node;

typedef struct pg_policy pg_policy;

typedef enum pg_policy_dest_kind {
    PG_POLICY_DEST_NATIONAL = 1, /* the national service */
    PG_POLICY_DEST_FORCE = 2,    /* one partner force */
} pg_policy_dest_kind;

/* One destination as configured. Read-only; owned by the policy. */
typedef struct pg_policy_destination {
    const char *name; /* unique; the key under which the caller keeps "shared" state */
    pg_policy_dest_kind kind;
    const char *force;      /* PG_POLICY_DEST_FORCE: the partner's force code; else NULL */
    const char *topic;      /* the Kafka topic this destination reads */
    const char *agreement;  /* the agreement everything sent here is under */
    int max_classification; /* CLASSIFICATION_OFFICIAL or _OFFICIAL_SENSITIVE */
    int allow_handling_c;   /* handling-C records may go here... */
    const char *handling_c_agreement; /* ...under this agreement (set iff allowed) */
    uint32_t kinds;                   /* bit (1u << EntityKind) for each kind it may receive */
    uint32_t redact;                  /* bit (1u << pg_policy_field) for each field redacted */
    unsigned mopi_groups; /* bit g for MoPI group g (1-4); bit 0: records without a group */
} pg_policy_destination;

/* One partner we consume from. Read-only; owned by the policy. */
typedef struct pg_policy_partner {
    const char *force;       /* the partner's force code */
    const char *topic;       /* the topic it publishes to */
    const char *agreement;   /* the agreement we receive under */
    const char **speaks_for; /* origin forces it may publish records of (default: itself) */
    size_t n_speaks_for;
    /* The highest classification we accept from it (a Classification value; default
     * OFFICIAL-SENSITIVE): the receiving force decides what it takes. */
    int max_classification;
} pg_policy_partner;

/* The fields a destination can have redacted: a fixed vocabulary, each name mapped to
 * canonical fields (docs/policy.md "Redactions"). */
#define PG_POLICY_FIELD_TABLE(X)                                                                   \
    X(ORIGIN_ORG_UNIT, "origin.org_unit")                                                          \
    X(PERSON_ETHNICITY, "person.ethnicity")                                                        \
    X(PERSON_SELF_DEFINED_ETHNICITY, "person.self_defined_ethnicity")                              \
    X(PERSON_OFFICER_DEFINED_ETHNICITY, "person.officer_defined_ethnicity")                        \
    X(PERSON_WARNING_MARKERS, "person.warning_markers")                                            \
    X(PERSON_DATE_OF_BIRTH, "person.date_of_birth")                                                \
    X(PERSON_DATE_OF_BIRTH_DAY, "person.date_of_birth.day")                                        \
    X(PERSON_PLACE_OF_BIRTH, "person.place_of_birth")                                              \
    X(PERSON_NATIONALITY, "person.nationality")                                                    \
    X(PERSON_PNC_ID, "person.pnc_id")                                                              \
    X(PERSON_CRO_NUMBER, "person.cro_number")                                                      \
    X(PERSON_ALIASES, "person.aliases")                                                            \
    X(PERSON_OCCUPATION, "person.occupation")                                                      \
    X(LOCATION_POSITION, "location.position")                                                      \
    X(LOCATION_DESCRIPTION, "location.description")                                                \
    X(VEHICLE_VIN, "vehicle.vin")                                                                  \
    X(ITEM_VALUE, "item.value")                                                                    \
    X(TELEPHONE_IMEI, "telephone.imei")                                                            \
    X(OCCURRENCE_SUMMARY, "occurrence.summary")                                                    \
    X(INTELLIGENCE_TEXT, "intelligence.text")                                                      \
    X(INTELLIGENCE_GRADING, "intelligence.grading")

typedef enum pg_policy_field {
#define PG__POLICY_FIELD_ENUM(id, name) PG_POLICY_FIELD_##id,
    PG_POLICY_FIELD_TABLE(PG__POLICY_FIELD_ENUM)
#undef PG__POLICY_FIELD_ENUM
        PG_POLICY_FIELD_COUNT
} pg_policy_field;

/* Why a record is withheld from a destination. X(ID, name, meaning). */
#define PG_POLICY_REASON_TABLE(X)                                                                  \
    X(OK, "ok", "may be shared")                                                                   \
    X(DELETED, "deleted", "the record is deleted (MoPI disposal or created in error)")             \
    X(INVALID, "invalid", "the operation is missing or unknown")                                   \
    X(MARKING, "marking-missing", "the marking is missing or unknown")                             \
    X(SECRET, "secret", "SECRET and TOP SECRET records are never shared")                          \
    X(CLASSIFICATION, "classification", "classification above the destination's maximum")          \
    X(HANDLING, "handling", "handling C, and no agreement allows it for the destination")          \
    X(KIND, "kind", "the destination does not receive this kind")                                  \
    X(MOPI, "mopi", "the destination does not receive this MoPI group")                            \
    X(LINK_END, "link-end", "an end of the link is withheld from the destination")                 \
    X(LINK_END_UNKNOWN, "link-end-unknown", "an end of the link is not known to be shared")        \
    X(REDACTION, "redaction",                                                                      \
      "the destination holds a field its policy now redacts; it comes back redacted with the "     \
      "record's next revision")

typedef enum pg_policy_reason {
#define PG__POLICY_REASON_ENUM(id, name, meaning) PG_POLICY_R_##id,
    PG_POLICY_REASON_TABLE(PG__POLICY_REASON_ENUM)
#undef PG__POLICY_REASON_ENUM
        PG_POLICY_REASON_COUNT
} pg_policy_reason;

/* "classification", "marking-missing"... (the audit log's outcome); NULL if unknown. */
const char *pg_policy_reason_name(pg_policy_reason reason);
/* One sentence for logs and operators. */
const char *pg_policy_reason_text(pg_policy_reason reason);
/* "person.ethnicity"...; NULL if unknown. */
const char *pg_policy_field_name(pg_policy_field field);

/* ------------------------------------------------------------------ loading */

/* Build a policy from the value of a config's `policy:` key (a mapping). file names
 * the config in messages ("FILE:LINE:COL: policy.destinations[1].kinds: ...");
 * our_force is this gateway's force code (a destination or partner may not be us, a
 * partner may not speak for us). Rejects unknown keys, unknown kinds and fields,
 * contradictions and missing agreements. NULL with the first problem in errstr. The
 * node's document may be freed afterwards: the policy copies what it keeps. */
pg_policy *pg_policy_parse(struct fy_node *section, const char *file, const char *our_force,
                           char *errstr, size_t errstr_size);
/* Called with each problem found, "FILE:LINE:COL: path: what", in document order. */
typedef void (*pg_policy_report_fn)(void *ud, const char *problem);
/* pg_policy_parse that goes on after a problem and gives report every one it finds
 * (errstr still gets the first): for `polegated --check-config`. The rules between
 * keys (agreements declared, topics unique...) are checked once every key parsed. */
pg_policy *pg_policy_parse_each(struct fy_node *section, const char *file, const char *our_force,
                                pg_policy_report_fn report, void *ud, char *errstr,
                                size_t errstr_size);
/* Read the `policy:` section of a YAML file (a whole force config or a policy-only
 * file; other top-level keys are left to the config). NULL with a reason. */
pg_policy *pg_policy_load(const char *path, const char *our_force, char *errstr,
                          size_t errstr_size);
/* The same from YAML text (tests, --check-config of a string). */
pg_policy *pg_policy_load_string(const char *yaml, size_t len, const char *our_force, char *errstr,
                                 size_t errstr_size);
/* Frees the policy; sets *p to NULL; NULL-safe. Destinations and partners obtained
 * from it die with it. */
void pg_policy_destroy(pg_policy **p);

const char *pg_policy_version(const pg_policy *self);
/* SHA-256 (hex) of the policy section's rules, comments, layout and quoting aside: a
 * change of rules under an unchanged policy.version is refused at start (router). */
const char *pg_policy_digest(const pg_policy *self);
/* The digest releases before 2026-12-07 stored (quoting counted): a signature they
 * stored is matched against it. */
const char *pg_policy_digest_v1(const pg_policy *self);
const char *pg_policy_force(const pg_policy *self);
size_t pg_policy_destination_count(const pg_policy *self);
const pg_policy_destination *pg_policy_destination_at(const pg_policy *self, size_t i);
const pg_policy_destination *pg_policy_destination_find(const pg_policy *self, const char *name);
size_t pg_policy_partner_count(const pg_policy *self);
const pg_policy_partner *pg_policy_partner_at(const pg_policy *self, size_t i);
/* The partner that publishes to topic; NULL when none. */
const pg_policy_partner *pg_policy_partner_by_topic(const pg_policy *self, const char *topic);
/* The description of a declared agreement; NULL when not declared. */
const char *pg_policy_agreement_description(const pg_policy *self, const char *name);

/* ------------------------------------------------------------------ deciding */

typedef enum pg_policy_verdict {
    PG_POLICY_WITHHOLD = 0,
    PG_POLICY_SHARE = 1,
} pg_policy_verdict;

/* The outcome for one record and one destination. */
typedef struct pg_policy_decision {
    pg_policy_verdict verdict;
    pg_policy_reason reason; /* PG_POLICY_R_OK when shared */
    const pg_policy_destination *destination;
    /* SHARE only: what to publish. Either the input itself (nothing to change) or a
     * shallow copy in the caller's arena with the redacted fields cleared; it shares
     * the input's unredacted sub-messages and strings, so it lives as long as both. */
    const pg_entity_update *entity;
    const pg_link_update *link;
    const char *agreement;  /* SHARE: the agreement that allowed it */
    const char *redactions; /* SHARE: "person.ethnicity,intelligence.text" or "none" */
    uint32_t redacted;      /* SHARE: bits of pg_policy_field applied */
} pg_policy_decision;

/* What decides shareability of an entity, without its content: what the caller keeps
 * per entity to re-decide on a policy change (docs/policy.md "Routing"). */
typedef struct pg_policy_facts {
    int operation;      /* Operation */
    int kind;           /* EntityKind */
    int has_marking;    /* 0 when the record carried no marking at all */
    int classification; /* Classification */
    int handling;       /* Handling */
    int mopi_group;     /* 0 none, 1-4 */
} pg_policy_facts;

void pg_policy_facts_of(const pg_entity_update *entity, pg_policy_facts *out);
/* May an entity with these facts go to destination? PG_POLICY_R_OK or why not. */
pg_policy_reason pg_policy_check_facts(const pg_policy *self,
                                       const pg_policy_destination *destination,
                                       const pg_policy_facts *facts);

/* Did destination already receive entity id (and still hold it)? Used to filter an
 * entity's merged_from list, which must not reveal ids of records that were withheld. */
typedef int (*pg_policy_shared_fn)(void *ud, const char *entity_id);

/* Decide entity for destination. On SHARE, out->entity is what to publish: when the
 * destination redacts fields of this kind, or merged_from must be filtered, a copy
 * allocated in arena with those fields cleared (the input is never changed);
 * otherwise the input. merged_from keeps only the refs shared(ud, id) says the
 * destination has; shared NULL drops merged_from from every copy (safe default).
 * SECRET, TOP SECRET, unspecified or unknown markings are always withheld. Returns 0
 * (decision in out) or PG_ENOMEM. */
/* entity with the fields of mask (bits of pg_policy_field, as decision.redacted) cleared:
 * the input itself when mask is 0, else a shallow copy in arena (merged_from as it is).
 * What a destination was sent under an earlier policy's redactions. PG_ENOMEM or 0. */
int pg_policy_redact_entity(pg_arena *arena, const pg_entity_update *entity, uint32_t mask,
                            const pg_entity_update **out);
int pg_policy_decide_entity(const pg_policy *self, const pg_policy_destination *destination,
                            const pg_entity_update *entity, pg_arena *arena,
                            pg_policy_shared_fn shared, void *ud, pg_policy_decision *out);

/* What the caller knows of one end of a link for one destination. */
typedef enum pg_policy_end {
    PG_POLICY_END_UNKNOWN = 0, /* the gateway has no state for that entity */
    PG_POLICY_END_WITHHELD = 1,
    PG_POLICY_END_SHARED = 2, /* the destination holds the entity now */
} pg_policy_end;

/* Decide link for destination: its own marking must be shareable there and both ends
 * must be PG_POLICY_END_SHARED; an unknown end withholds the link until that entity
 * is shared (the caller re-decides the entity's links when its state changes). A
 * shared link is the input, or a copy in arena when origin.org_unit is redacted.
 * 0 or PG_ENOMEM. */
int pg_policy_decide_link(const pg_policy *self, const pg_policy_destination *destination,
                          const pg_link_update *link, pg_policy_end from, pg_policy_end to,
                          pg_arena *arena, pg_policy_decision *out);

/* What to send a destination, given whether it holds the record now (was_shared: the
 * last thing sent there for this id was an UPSERT) and the new decision. */
typedef enum pg_policy_action {
    PG_POLICY_NOTHING = 0,  /* withheld, and it never had it: audit "withhold" */
    PG_POLICY_PUBLISH = 1,  /* send decision->entity / link; it now holds it: "disclose" */
    PG_POLICY_WITHDRAW = 2, /* send a DELETE and a tombstone; it no longer holds it:
                             * "withdraw" */
} pg_policy_action;

pg_policy_action pg_policy_transition(int was_shared, const pg_policy_decision *decision);

/* The DELETE to send a destination that must no longer hold entity / link. It says
 * only what the destination already knew (id, kind, origin ids, the ends of a link):
 * never the new marking or the reason. version: the triggering update's version (the
 * last shared one when a policy change withdraws). Allocated in arena; NULL when out of
 * memory. */
pg_entity_update *pg_policy_withdrawal_entity(pg_arena *arena, const pg_entity_update *entity,
                                              uint64_t version);
pg_link_update *pg_policy_withdrawal_link(pg_arena *arena, const pg_link_update *link,
                                          uint64_t version);

/* ------------------------------------------------------------------ inbound */

/* May a record of origin_force arrive on topic? Only from a configured partner, and
 * only of an origin that partner may speak for (never this force). 0, or PG_EPOLICY
 * with the reason; *partner (may be NULL) gets the partner when the topic is known. */
int pg_policy_inbound_allowed(const pg_policy *self, const char *topic, const char *origin_force,
                              const pg_policy_partner **partner, char *errstr, size_t errstr_size);

#endif

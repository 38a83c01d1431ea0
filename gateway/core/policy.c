/* Sharing policy: per-destination decisions, redaction, withdrawal and inbound origin
 * checks (the `policy:` section is read by policy_parse.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"
#include "policy_int.h"

typedef Polegate__Pole__V1__Person s_person;
typedef Polegate__Pole__V1__Alias s_alias;
typedef Polegate__Pole__V1__Date s_date;
typedef Polegate__Pole__V1__Location s_location;
typedef Polegate__Pole__V1__Vehicle s_vehicle;
typedef Polegate__Pole__V1__Item s_item;
typedef Polegate__Pole__V1__Telephone s_telephone;
typedef Polegate__Pole__V1__Occurrence s_occurrence;
typedef Polegate__Pole__V1__Intelligence s_intelligence;

#define S_EMPTY ((char *)protobuf_c_empty_string)

static const char *const s_field_names[] = {
#define S_FIELD_NAME(id, name) name,
    PG_POLICY_FIELD_TABLE(S_FIELD_NAME)
#undef S_FIELD_NAME
};

/* The entity kind a field belongs to; 0: every kind and links. */
int pg_policy__field_kind(pg_policy_field f)
{
    const char *name = s_field_names[f];
    static const struct {
        const char *prefix;
        int kind;
    } prefixes[] = {
        {"person.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON},
        {"location.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION},
        {"vehicle.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE},
        {"item.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_ITEM},
        {"telephone.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_TELEPHONE},
        {"occurrence.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_OCCURRENCE},
        {"intelligence.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE},
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i].prefix, strlen(prefixes[i].prefix)))
            return prefixes[i].kind;
    return 0;
}

static const struct {
    const char *name;
    const char *text;
} s_reasons[] = {
#define S_REASON(id, name, text) {name, text},
    PG_POLICY_REASON_TABLE(S_REASON)
#undef S_REASON
};

const char *pg_policy_reason_name(pg_policy_reason reason)
{
    return (unsigned)reason < PG_POLICY_REASON_COUNT ? s_reasons[reason].name : NULL;
}

const char *pg_policy_reason_text(pg_policy_reason reason)
{
    return (unsigned)reason < PG_POLICY_REASON_COUNT ? s_reasons[reason].text : "unknown reason";
}

const char *pg_policy_field_name(pg_policy_field field)
{
    return (unsigned)field < PG_POLICY_FIELD_COUNT ? s_field_names[field] : NULL;
}

/* ------------------------------------------------------------------ deciding */

void pg_policy_facts_of(const pg_entity_update *entity, pg_policy_facts *out)
{
    memset(out, 0, sizeof *out);
    out->operation = entity->operation;
    out->kind = entity->kind;
    if (entity->marking) {
        out->has_marking = 1;
        out->classification = entity->marking->classification;
        out->handling = entity->marking->handling;
    }
    out->mopi_group = entity->retention ? entity->retention->mopi_group : 0;
}

/* The marking rules, shared by entities and links. */
static pg_policy_reason s_check_marking(const pg_policy_destination *d, int has_marking,
                                        int classification, int handling)
{
    if (!has_marking)
        return PG_POLICY_R_MARKING;
    switch (classification) {
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL:
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE:
        break;
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_SECRET:
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_TOP_SECRET:
        return PG_POLICY_R_SECRET;
    default: /* unspecified, or a value this build does not know: never guessed */
        return PG_POLICY_R_MARKING;
    }
    if (handling != POLEGATE__POLE__V1__HANDLING__HANDLING_P &&
        handling != POLEGATE__POLE__V1__HANDLING__HANDLING_C)
        return PG_POLICY_R_MARKING;
    if (classification > d->max_classification)
        return PG_POLICY_R_CLASSIFICATION;
    if (handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C && !d->allow_handling_c)
        return PG_POLICY_R_HANDLING;
    return PG_POLICY_R_OK;
}

static pg_policy_reason s_check_operation(int operation)
{
    if (operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE)
        return PG_POLICY_R_DELETED;
    if (operation != POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT)
        return PG_POLICY_R_INVALID;
    return PG_POLICY_R_OK;
}

pg_policy_reason pg_policy_check_facts(const pg_policy *self,
                                       const pg_policy_destination *destination,
                                       const pg_policy_facts *facts)
{
    (void)self;
    pg_policy_reason r = s_check_operation(facts->operation);
    if (r == PG_POLICY_R_OK)
        r = s_check_marking(destination, facts->has_marking, facts->classification,
                            facts->handling);
    if (r != PG_POLICY_R_OK)
        return r;
    if (facts->kind < 1 || facts->kind > PG_POLICY_KIND_MAX ||
        !(destination->kinds & (1u << facts->kind)))
        return PG_POLICY_R_KIND;
    if (facts->mopi_group < 0 || facts->mopi_group > 4 ||
        !(destination->mopi_groups & (1u << facts->mopi_group)))
        return PG_POLICY_R_MOPI;
    return PG_POLICY_R_OK;
}

static void *s_dup(pg_arena *arena, const void *src, size_t size)
{
    void *p = pg_arena_alloc(arena, size);
    if (p)
        memcpy(p, src, size);
    return p;
}

/* A date with the redactions of mask applied: NULL (no date), the input, or a copy. */
static int s_redact_date(pg_arena *arena, s_date **date, uint32_t mask)
{
    if (!*date)
        return 0;
    if (mask & PG_POLICY_BIT(PERSON_DATE_OF_BIRTH)) {
        *date = NULL;
    } else if (mask & PG_POLICY_BIT(PERSON_DATE_OF_BIRTH_DAY)) {
        s_date *d = s_dup(arena, *date, sizeof *d);
        if (!d)
            return PG_ENOMEM;
        d->day = 0;
        *date = d;
    }
    return 0;
}

static int s_redact_person(pg_arena *arena, pg_entity_update *e, uint32_t mask)
{
    s_person *p = s_dup(arena, e->person, sizeof *p);
    if (!p)
        return PG_ENOMEM;
    e->person = p;
    if (mask & (PG_POLICY_BIT(PERSON_ETHNICITY) | PG_POLICY_BIT(PERSON_SELF_DEFINED_ETHNICITY)))
        p->self_defined_ethnicity = 0;
    if (mask & (PG_POLICY_BIT(PERSON_ETHNICITY) | PG_POLICY_BIT(PERSON_OFFICER_DEFINED_ETHNICITY)))
        p->officer_defined_ethnicity = 0;
    if (mask & PG_POLICY_BIT(PERSON_WARNING_MARKERS)) {
        p->n_warning_markers = 0;
        p->warning_markers = NULL;
    }
    if (mask & PG_POLICY_BIT(PERSON_PLACE_OF_BIRTH))
        p->place_of_birth = S_EMPTY;
    if (mask & PG_POLICY_BIT(PERSON_NATIONALITY))
        p->nationality = S_EMPTY;
    if (mask & PG_POLICY_BIT(PERSON_PNC_ID))
        p->pnc_id = S_EMPTY;
    if (mask & PG_POLICY_BIT(PERSON_CRO_NUMBER))
        p->cro_number = S_EMPTY;
    if (mask & PG_POLICY_BIT(PERSON_OCCUPATION))
        p->occupation = S_EMPTY;
    if (s_redact_date(arena, &p->date_of_birth, mask))
        return PG_ENOMEM;
    if (mask & PG_POLICY_BIT(PERSON_ALIASES)) {
        p->n_aliases = 0;
        p->aliases = NULL;
    } else if (p->n_aliases && (mask & (PG_POLICY_BIT(PERSON_DATE_OF_BIRTH) |
                                        PG_POLICY_BIT(PERSON_DATE_OF_BIRTH_DAY)))) {
        /* An alias's date of birth is the same fact as the person's. */
        s_alias **aliases = pg_arena_alloc(arena, p->n_aliases * sizeof *aliases);
        if (!aliases)
            return PG_ENOMEM;
        for (size_t i = 0; i < p->n_aliases; i++) {
            if (!(aliases[i] = s_dup(arena, p->aliases[i], sizeof *aliases[i])) ||
                s_redact_date(arena, &aliases[i]->date_of_birth, mask))
                return PG_ENOMEM;
        }
        p->aliases = aliases;
    }
    return 0;
}

/* Copy the body of e (of type T, member m) and let the statement redact the copy `b`. */
#define S_REDACT_BODY(T, m, stmt)                                                                  \
    do {                                                                                           \
        T *b = s_dup(arena, e->m, sizeof *b);                                                      \
        if (!b)                                                                                    \
            return PG_ENOMEM;                                                                      \
        stmt;                                                                                      \
        e->m = b;                                                                                  \
    } while (0)

/* Apply mask (already restricted to e's kind) to e, a shallow copy of the input. */
static int s_redact_body(pg_arena *arena, pg_entity_update *e, uint32_t mask)
{
    switch (e->body_case) {
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON:
        return s_redact_person(arena, e, mask);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION:
        S_REDACT_BODY(s_location, location, {
            if (mask & PG_POLICY_BIT(LOCATION_POSITION)) {
                b->geo = NULL;
                b->grid = NULL;
            }
            if (mask & PG_POLICY_BIT(LOCATION_DESCRIPTION))
                b->description = S_EMPTY;
        });
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE:
        S_REDACT_BODY(s_vehicle, vehicle, b->vin = S_EMPTY);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM:
        S_REDACT_BODY(s_item, item, b->value = NULL);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE:
        S_REDACT_BODY(s_telephone, telephone, b->imei = S_EMPTY);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE:
        S_REDACT_BODY(s_occurrence, occurrence, b->summary = S_EMPTY);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE:
        S_REDACT_BODY(s_intelligence, intelligence, {
            if (mask & PG_POLICY_BIT(INTELLIGENCE_TEXT))
                b->text = S_EMPTY;
            if (mask & PG_POLICY_BIT(INTELLIGENCE_GRADING))
                b->grading = NULL;
        });
        return 0;
    default:
        return 0;
    }
}

static int s_redact_origin(pg_arena *arena, pg_origin **origin)
{
    if (!*origin)
        return 0;
    pg_origin *o = s_dup(arena, *origin, sizeof *o);
    if (!o)
        return PG_ENOMEM;
    o->org_unit = S_EMPTY;
    *origin = o;
    return 0;
}

static void s_share(const pg_policy_dest_def *d, int slot, int handling, pg_policy_decision *out)
{
    out->verdict = PG_POLICY_SHARE;
    out->reason = PG_POLICY_R_OK;
    out->agreement = handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C
                         ? d->pub.handling_c_agreement
                         : d->pub.agreement;
    out->redacted = d->slot_redact[slot];
    out->redactions = d->slot_text[slot];
}

int pg_policy_redact_entity(pg_arena *arena, const pg_entity_update *entity, uint32_t mask,
                            const pg_entity_update **out)
{
    *out = entity;
    if (!mask)
        return 0;
    pg_entity_update *e = s_dup(arena, entity, sizeof *e);
    if (!e || (mask & PG_POLICY_BIT(ORIGIN_ORG_UNIT) && s_redact_origin(arena, &e->origin)) ||
        (mask & ~PG_POLICY_BIT(ORIGIN_ORG_UNIT) && s_redact_body(arena, e, mask)))
        return PG_ENOMEM;
    *out = e;
    return 0;
}

int pg_policy_decide_entity(const pg_policy *self, const pg_policy_destination *destination,
                            const pg_entity_update *entity, pg_arena *arena,
                            pg_policy_shared_fn shared, void *ud, pg_policy_decision *out)
{
    const pg_policy_dest_def *d = (const pg_policy_dest_def *)destination;
    memset(out, 0, sizeof *out);
    out->verdict = PG_POLICY_WITHHOLD;
    out->destination = destination;
    pg_policy_facts facts;
    pg_policy_facts_of(entity, &facts);
    out->reason = pg_policy_check_facts(self, destination, &facts);
    /* The body must be the kind's: redaction and the kind rule look at different
     * members, and a mismatch would slip one past the other. */
    if (out->reason == PG_POLICY_R_OK && (int)entity->body_case != 19 + (int)entity->kind)
        out->reason = PG_POLICY_R_INVALID;
    if (out->reason != PG_POLICY_R_OK)
        return 0;
    uint32_t mask = d->slot_redact[entity->kind];
    if (!mask && !entity->n_merged_from) {
        out->entity = entity;
    } else {
        const pg_entity_update *redacted;
        pg_entity_update *e = NULL;
        if (pg_policy_redact_entity(arena, entity, mask, &redacted) ||
            !(e = redacted != entity ? (pg_entity_update *)redacted
                                     : s_dup(arena, entity, sizeof *e)))
            return PG_ENOMEM;
        if (e->n_merged_from) {
            pg_entity_ref **kept = NULL;
            size_t n = 0;
            if (shared && !(kept = pg_arena_alloc(arena, e->n_merged_from * sizeof *kept)))
                return PG_ENOMEM;
            for (size_t i = 0; shared && i < e->n_merged_from; i++)
                if (e->merged_from[i] && shared(ud, e->merged_from[i]->id))
                    kept[n++] = e->merged_from[i];
            e->merged_from = n ? kept : NULL;
            e->n_merged_from = n;
        }
        out->entity = e;
    }
    s_share(d, entity->kind, facts.handling, out);
    return 0;
}

int pg_policy_decide_link(const pg_policy *self, const pg_policy_destination *destination,
                          const pg_link_update *link, pg_policy_end from, pg_policy_end to,
                          pg_arena *arena, pg_policy_decision *out)
{
    (void)self;
    const pg_policy_dest_def *d = (const pg_policy_dest_def *)destination;
    memset(out, 0, sizeof *out);
    out->verdict = PG_POLICY_WITHHOLD;
    out->destination = destination;
    const pg_marking *m = link->marking;
    out->reason = s_check_operation(link->operation);
    if (out->reason == PG_POLICY_R_OK)
        out->reason = s_check_marking(destination, m != NULL, m ? (int)m->classification : 0,
                                      m ? (int)m->handling : 0);
    if (out->reason == PG_POLICY_R_OK &&
        (from == PG_POLICY_END_WITHHELD || to == PG_POLICY_END_WITHHELD))
        out->reason = PG_POLICY_R_LINK_END;
    if (out->reason == PG_POLICY_R_OK &&
        (from != PG_POLICY_END_SHARED || to != PG_POLICY_END_SHARED))
        out->reason = PG_POLICY_R_LINK_END_UNKNOWN;
    if (out->reason != PG_POLICY_R_OK)
        return 0;
    if (d->slot_redact[PG_POLICY_SLOT_LINK]) {
        pg_link_update *l = s_dup(arena, link, sizeof *l);
        if (!l || s_redact_origin(arena, &l->origin))
            return PG_ENOMEM;
        out->link = l;
    } else {
        out->link = link;
    }
    s_share(d, PG_POLICY_SLOT_LINK, (int)m->handling, out);
    return 0;
}

pg_policy_action pg_policy_transition(int was_shared, const pg_policy_decision *decision)
{
    if (decision->verdict == PG_POLICY_SHARE)
        return PG_POLICY_PUBLISH;
    return was_shared ? PG_POLICY_WITHDRAW : PG_POLICY_NOTHING;
}

/* Only ids the destination already has: never the new marking or anything else. */
static pg_origin *s_origin_ids(pg_arena *arena, const pg_origin *in)
{
    if (!in)
        return NULL;
    pg_origin *o = PG_PB_NEW(arena, pg_origin, polegate__pole__v1__origin);
    if (!o)
        return NULL;
    o->force = in->force;
    o->system = in->system;
    o->native_type = in->native_type;
    o->native_id = in->native_id;
    return o;
}

pg_entity_update *pg_policy_withdrawal_entity(pg_arena *arena, const pg_entity_update *entity,
                                              uint64_t version)
{
    pg_entity_update *e = PG_PB_NEW(arena, pg_entity_update, polegate__pole__v1__entity_update);
    if (!e)
        return NULL;
    e->id = entity->id;
    e->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    e->version = version;
    e->kind = entity->kind;
    if (entity->origin && !(e->origin = s_origin_ids(arena, entity->origin)))
        return NULL;
    return e;
}

pg_link_update *pg_policy_withdrawal_link(pg_arena *arena, const pg_link_update *link,
                                          uint64_t version)
{
    pg_link_update *l = PG_PB_NEW(arena, pg_link_update, polegate__pole__v1__link_update);
    if (!l)
        return NULL;
    l->id = link->id;
    l->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    l->version = version;
    l->from = link->from;
    l->role = link->role;
    l->to = link->to;
    if (link->origin && !(l->origin = s_origin_ids(arena, link->origin)))
        return NULL;
    return l;
}

/* ------------------------------------------------------------------ inbound */

int pg_policy_inbound_allowed(const pg_policy *self, const char *topic, const char *origin_force,
                              const pg_policy_partner **partner, char *errstr, size_t errstr_size)
{
    const pg_policy_partner *p = pg_policy_partner_by_topic(self, topic);
    if (partner)
        *partner = p;
    if (!p)
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "inbound: topic '%s' is not a configured partner's", topic ? topic : "");
    if (!origin_force || !*origin_force)
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "inbound: a record from partner %s names no origin force", p->force);
    if (!strcmp(origin_force, self->force))
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "inbound: partner %s sent a record claiming to originate from this "
                       "force (%s)",
                       p->force, self->force);
    for (size_t i = 0; i < p->n_speaks_for; i++)
        if (!strcmp(p->speaks_for[i], origin_force))
            return 0;
    return pg_errf(PG_EPOLICY, errstr, errstr_size,
                   "inbound: origin.force: partner %s may not speak for that force", p->force);
}

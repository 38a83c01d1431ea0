/* ATX/2 code tables (docs/formats/codes.md) and identifier checks. */
#include <string.h>

#include "atx.h"

/* A row whose ATX spelling is the canonical short name. */
#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define SAME(prefix, x)                                                                            \
    {                                                                                              \
#x, PASTE(prefix, x)                                                                       \
    }
#define TABLE(name, list, ...)                                                                     \
    static const pg_atx_code name##_codes[] = {__VA_ARGS__};                                       \
    const pg_atx_table name = {name##_codes, sizeof name##_codes / sizeof name##_codes[0], list}

int pg_atx_code_value(const pg_atx_table *t, const char *atx)
{
    for (size_t i = 0; atx && i < t->n; i++)
        if (strcmp(t->codes[i].atx, atx) == 0)
            return t->codes[i].value;
    return -1;
}

const char *pg_atx_code_name(const pg_atx_table *t, int value)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->codes[i].value == value)
            return t->codes[i].atx;
    return NULL;
}

#define K_ POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_
TABLE(pg_atx_type,
      "PERSON, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE, OCCURRENCE, CUSTODY, INTELLIGENCE",
      SAME(K_, PERSON), SAME(K_, LOCATION), SAME(K_, VEHICLE), SAME(K_, ITEM), SAME(K_, WEAPON),
      SAME(K_, TELEPHONE), SAME(K_, OCCURRENCE), SAME(K_, CUSTODY), SAME(K_, INTELLIGENCE));

#define O_ POLEGATE__POLE__V1__OPERATION__OPERATION_
TABLE(pg_atx_action, "UPSERT, DELETE", SAME(O_, UPSERT), SAME(O_, DELETE));

#define SEX(x) POLEGATE__POLE__V1__SEX__SEX_##x
TABLE(pg_atx_sex, "MALE, FEMALE, UNKNOWN, NOT_SPECIFIED", {"UNKNOWN", SEX(NOT_KNOWN)},
      {"MALE", SEX(MALE)}, {"FEMALE", SEX(FEMALE)}, {"NOT_SPECIFIED", SEX(NOT_APPLICABLE)});

#define SDE_ POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_
TABLE(pg_atx_sde, "W1, W2, W3, W9, M1, M2, M3, M9, A1, A2, A3, A4, A9, B1, B2, B9, O1, O2, O9, NS",
      SAME(SDE_, W1), SAME(SDE_, W2), SAME(SDE_, W3), SAME(SDE_, W9), SAME(SDE_, M1),
      SAME(SDE_, M2), SAME(SDE_, M3), SAME(SDE_, M9), SAME(SDE_, A1), SAME(SDE_, A2),
      SAME(SDE_, A3), SAME(SDE_, A4), SAME(SDE_, A9), SAME(SDE_, B1), SAME(SDE_, B2),
      SAME(SDE_, B9), SAME(SDE_, O1), SAME(SDE_, O2), SAME(SDE_, O9), SAME(SDE_, NS));

#define IC_ POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_
TABLE(pg_atx_ic, "IC1, IC2, IC3, IC4, IC5, IC6, IC9", SAME(IC_, IC1), SAME(IC_, IC2),
      SAME(IC_, IC3), SAME(IC_, IC4), SAME(IC_, IC5), SAME(IC_, IC6), SAME(IC_, IC9));

#define WM_ POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_
TABLE(pg_atx_wm, "AG, AT, CO, DR, ES, EX, FI, IM, IF, MH, SH, SU, VI, WE", SAME(WM_, AG),
      SAME(WM_, AT), SAME(WM_, CO), SAME(WM_, DR), SAME(WM_, ES), SAME(WM_, EX), SAME(WM_, FI),
      SAME(WM_, IM), SAME(WM_, IF), SAME(WM_, MH), SAME(WM_, SH), SAME(WM_, SU), SAME(WM_, VI),
      SAME(WM_, WE));

#define COL_ POLEGATE__POLE__V1__COLOUR__COLOUR_
TABLE(pg_atx_colour, "BLACK, BLUE, BROWN, GREEN, GREY, RED, SILVER, WHITE, YELLOW, OTHER",
      SAME(COL_, BLACK), SAME(COL_, BLUE), SAME(COL_, BROWN), SAME(COL_, GREEN), SAME(COL_, GREY),
      SAME(COL_, RED), SAME(COL_, SILVER), SAME(COL_, WHITE), SAME(COL_, YELLOW),
      SAME(COL_, OTHER));

#define ITEM_ POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_
TABLE(pg_atx_item, "CASH, JEWELLERY, ELECTRONICS, BICYCLE, DOCUMENT, DRUGS, TOOLS, OTHER",
      SAME(ITEM_, CASH), SAME(ITEM_, JEWELLERY), SAME(ITEM_, ELECTRONICS), SAME(ITEM_, BICYCLE),
      SAME(ITEM_, DOCUMENT), SAME(ITEM_, DRUGS), SAME(ITEM_, TOOLS), SAME(ITEM_, OTHER));

#define WPN_ POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_
TABLE(pg_atx_weapon, "FIREARM, KNIFE, BLUNT, OTHER", SAME(WPN_, FIREARM), SAME(WPN_, KNIFE),
      SAME(WPN_, BLUNT), SAME(WPN_, OTHER));

#define TEL_ POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_
TABLE(pg_atx_telkind, "MOBILE, LANDLINE, UNKNOWN", SAME(TEL_, MOBILE), SAME(TEL_, LANDLINE),
      SAME(TEL_, UNKNOWN));

#define OK_ POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_
TABLE(pg_atx_occkind, "CRIME, INCIDENT", SAME(OK_, CRIME), SAME(OK_, INCIDENT));

#define OS_ POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_
TABLE(pg_atx_occstatus, "OPEN, UNDER_INVESTIGATION, CLOSED, FILED", SAME(OS_, OPEN),
      SAME(OS_, UNDER_INVESTIGATION), SAME(OS_, CLOSED), SAME(OS_, FILED));

#define OUT_ POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_
TABLE(pg_atx_outcome, "CHARGED, CAUTIONED, RELEASED_UNDER_INVESTIGATION, BAILED, NO_FURTHER_ACTION",
      SAME(OUT_, CHARGED), SAME(OUT_, CAUTIONED), SAME(OUT_, RELEASED_UNDER_INVESTIGATION),
      SAME(OUT_, BAILED), SAME(OUT_, NO_FURTHER_ACTION));

#define CL_ POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_
TABLE(pg_atx_classification, "OFFICIAL, OFFICIAL-SENSITIVE, SECRET, TOP-SECRET",
      SAME(CL_, OFFICIAL), {"OFFICIAL-SENSITIVE", PASTE(CL_, OFFICIAL_SENSITIVE)},
      SAME(CL_, SECRET), {"TOP-SECRET", PASTE(CL_, TOP_SECRET)});

#define H_ POLEGATE__POLE__V1__HANDLING__HANDLING_
TABLE(pg_atx_handling, "P, C", SAME(H_, P), SAME(H_, C));

#define IA_ POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_
TABLE(pg_atx_assessment, "A, B, C, D, E", SAME(IA_, A), SAME(IA_, B), SAME(IA_, C), SAME(IA_, D),
      SAME(IA_, E));

#define R_ POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_
TABLE(pg_atx_role,
      "HOME_ADDRESS, OTHER_ADDRESS, SUSPECT, VICTIM, WITNESS, OFFENDER, REPORTER, "
      "OCCURRED_AT, STOLEN, USED, VEHICLE_INVOLVED, KEEPER, OWNER, USES, DETAINED, SUBJECT, "
      "ASSOCIATE",
      SAME(R_, HOME_ADDRESS), SAME(R_, OTHER_ADDRESS), SAME(R_, SUSPECT), SAME(R_, VICTIM),
      SAME(R_, WITNESS), SAME(R_, OFFENDER), SAME(R_, REPORTER), SAME(R_, OCCURRED_AT),
      SAME(R_, STOLEN), SAME(R_, USED), SAME(R_, VEHICLE_INVOLVED), SAME(R_, KEEPER),
      SAME(R_, OWNER), SAME(R_, USES), SAME(R_, DETAINED), SAME(R_, SUBJECT), SAME(R_, ASSOCIATE));

/* Letters in EntityKind order, index = kind. */
static const char s_letters[] = "?PLVIWTOCN";

char pg_atx_type_letter(int kind)
{
    return kind >= 1 && kind <= 9 ? s_letters[kind] : 0;
}

int pg_atx_id_kind(const char *id)
{
    if (!id || strlen(id) != PG_ATX_ID_LEN)
        return 0;
    for (int i = 1; i < PG_ATX_ID_LEN; i++)
        if (id[i] < '0' || id[i] > '9')
            return 0;
    const char *p = id[0] && id[0] != '?' ? strchr(s_letters, id[0]) : NULL;
    return p ? (int)(p - s_letters) : 0;
}

int pg_atx_id_valid(const char *id, int kind)
{
    return kind != 0 && pg_atx_id_kind(id) == kind;
}

int pg_atx_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return s[14] >= '1' && s[14] <= '8' && strchr("89ab", s[19]) != NULL;
}

size_t pg_atx_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

int pg_atx_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *pg_atx_trim(const char *s, size_t *len)
{
    while (*len && pg_atx_space(*s))
        s++, (*len)--;
    while (*len && pg_atx_space(s[*len - 1]))
        (*len)--;
    return s;
}

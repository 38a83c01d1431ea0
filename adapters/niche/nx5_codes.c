/* NX5 code tables (docs/formats/codes.md, NX5 columns) <-> canonical enum values. */
#include <string.h>

#include "nx5.h"

#define S_TABLE(var, what, ...)                                                                    \
    static const pg_nx5_code var##_codes[] = {__VA_ARGS__};                                        \
    const pg_nx5_table var = {what, var##_codes, sizeof var##_codes / sizeof var##_codes[0]}

S_TABLE(pg_nx5_gender, "gender (0, 1, 2 or 9)", {"0", POLEGATE__POLE__V1__SEX__SEX_NOT_KNOWN},
        {"1", POLEGATE__POLE__V1__SEX__SEX_MALE}, {"2", POLEGATE__POLE__V1__SEX__SEX_FEMALE},
        {"9", POLEGATE__POLE__V1__SEX__SEX_NOT_APPLICABLE});

S_TABLE(pg_nx5_ethnicity_od, "officer-defined ethnicity (1-6 or 9)",
        {"1", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC1},
        {"2", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC2},
        {"3", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC3},
        {"4", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC4},
        {"5", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC5},
        {"6", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC6},
        {"9", POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC9});

S_TABLE(pg_nx5_colour, "colour", {"BLK", POLEGATE__POLE__V1__COLOUR__COLOUR_BLACK},
        {"BLU", POLEGATE__POLE__V1__COLOUR__COLOUR_BLUE},
        {"BRN", POLEGATE__POLE__V1__COLOUR__COLOUR_BROWN},
        {"GRN", POLEGATE__POLE__V1__COLOUR__COLOUR_GREEN},
        {"GRY", POLEGATE__POLE__V1__COLOUR__COLOUR_GREY},
        {"RED", POLEGATE__POLE__V1__COLOUR__COLOUR_RED},
        {"SIL", POLEGATE__POLE__V1__COLOUR__COLOUR_SILVER},
        {"WHI", POLEGATE__POLE__V1__COLOUR__COLOUR_WHITE},
        {"YEL", POLEGATE__POLE__V1__COLOUR__COLOUR_YELLOW},
        {"OTH", POLEGATE__POLE__V1__COLOUR__COLOUR_OTHER});

S_TABLE(pg_nx5_item_category, "property category",
        {"CSH", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_CASH},
        {"JWL", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_JEWELLERY},
        {"ELC", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_ELECTRONICS},
        {"BIC", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_BICYCLE},
        {"DOC", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_DOCUMENT},
        {"DRG", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_DRUGS},
        {"TLS", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_TOOLS},
        {"OTH", POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_OTHER});

S_TABLE(pg_nx5_weapon_category, "weapon category",
        {"WPN-FA", POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_FIREARM},
        {"WPN-KN", POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_KNIFE},
        {"WPN-BL", POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_BLUNT},
        {"WPN-OT", POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_OTHER});

S_TABLE(pg_nx5_outcome, "custody outcome (CHG, CAU, RUI, BAIL or NFA)",
        {"CHG", POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_CHARGED},
        {"CAU", POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_CAUTIONED},
        {"RUI", POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_RELEASED_UNDER_INVESTIGATION},
        {"BAIL", POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_BAILED},
        {"NFA", POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_NO_FURTHER_ACTION});

S_TABLE(pg_nx5_gpms, "marking (O, OS, S or TS)",
        {"O", POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL},
        {"OS", POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE},
        {"S", POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_SECRET},
        {"TS", POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_TOP_SECRET});

S_TABLE(pg_nx5_handling, "handling (P or C)", {"P", POLEGATE__POLE__V1__HANDLING__HANDLING_P},
        {"C", POLEGATE__POLE__V1__HANDLING__HANDLING_C});

S_TABLE(pg_nx5_phone_type, "telephone type (M, L or U)",
        {"M", POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_MOBILE},
        {"L", POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_LANDLINE},
        {"U", POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_UNKNOWN});

S_TABLE(pg_nx5_occurrence_type, "occurrence type (Crime or Incident)",
        {"Crime", POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_CRIME},
        {"Incident", POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_INCIDENT});

S_TABLE(pg_nx5_status, "status (O, U, C or F)",
        {"O", POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_OPEN},
        {"U", POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_UNDER_INVESTIGATION},
        {"C", POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_CLOSED},
        {"F", POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_FILED});

S_TABLE(pg_nx5_grading_source, "source evaluation (1, 2 or 3)",
        {"1", POLEGATE__POLE__V1__SOURCE_EVALUATION__SOURCE_EVALUATION_1_RELIABLE},
        {"2", POLEGATE__POLE__V1__SOURCE_EVALUATION__SOURCE_EVALUATION_2_UNTESTED},
        {"3", POLEGATE__POLE__V1__SOURCE_EVALUATION__SOURCE_EVALUATION_3_NOT_RELIABLE});

S_TABLE(pg_nx5_grading_intel, "intelligence assessment (A-E)",
        {"A", POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_A},
        {"B", POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_B},
        {"C", POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_C},
        {"D", POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_D},
        {"E", POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_E});

int pg_nx5_code_value(const pg_nx5_table *t, const char *nx5)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->codes[i].nx5, nx5) == 0)
            return t->codes[i].value;
    return -1;
}

const char *pg_nx5_code_name(const pg_nx5_table *t, int value)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->codes[i].value == value)
            return t->codes[i].nx5;
    return NULL;
}

int pg_nx5_enum_value(const ProtobufCEnumDescriptor *desc, const char *short_name)
{
    for (unsigned i = 0; i < desc->n_values; i++) {
        int v = desc->values[i].value;
        const char *s = v ? pg_enum_short(desc, v) : NULL;
        if (s && strcmp(s, short_name) == 0)
            return v;
    }
    return -1;
}

#define R(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x

static const pg_nx5_role s_roles[] = {
    {"HOME", R(HOME_ADDRESS), "a Person", "an Address"},
    {"ADDR", R(OTHER_ADDRESS), "a Person", "an Address"},
    {"SUSP", R(SUSPECT), "an Occurrence", "a Person"},
    {"VICT", R(VICTIM), "an Occurrence", "a Person"},
    {"WIT", R(WITNESS), "an Occurrence", "a Person"},
    {"OFFR", R(OFFENDER), "an Occurrence", "a Person"},
    {"REPT", R(REPORTER), "an Occurrence", "a Person"},
    {"LOCN", R(OCCURRED_AT), "an Occurrence, Custody or IntelReport", "an Address"},
    {"STLN", R(STOLEN), "an Occurrence", "a Property item"},
    {"USED", R(USED), "an Occurrence", "a Property item or weapon"},
    {"VINV", R(VEHICLE_INVOLVED), "an Occurrence", "a Vehicle"},
    {"KEEP", R(KEEPER), "a Person", "a Vehicle"},
    {"OWN", R(OWNER), "a Person", "a Property or Vehicle"},
    {"USES", R(USES), "a Person", "a Telephone"},
    {"DETD", R(DETAINED), "a Custody", "a Person"},
    {"SUBJ", R(SUBJECT), "an IntelReport", "a Person, Vehicle, Telephone or Address"},
    {"ASSOC", R(ASSOCIATE), "a Person", "a Person"},
};

const pg_nx5_role *pg_nx5_role_by_name(const char *nx5)
{
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (strcmp(s_roles[i].nx5, nx5) == 0)
            return &s_roles[i];
    return NULL;
}

const pg_nx5_role *pg_nx5_role_by_value(int role)
{
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (s_roles[i].role == role)
            return &s_roles[i];
    return NULL;
}

const char *pg_nx5_kind_name(int kind)
{
    switch (kind) {
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON:
        return "Person";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION:
        return "Address";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE:
        return "Vehicle";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_ITEM:
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_WEAPON:
        return "Property";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_TELEPHONE:
        return "Telephone";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_OCCURRENCE:
        return "Occurrence";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_CUSTODY:
        return "Custody";
    case POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE:
        return "IntelReport";
    default:
        return NULL;
    }
}

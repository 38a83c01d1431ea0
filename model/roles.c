/* The canonical link roles' "from -> to" entity kinds (docs/formats/codes.md ROLE). */
#include <stddef.h>

#include "polegate/pole.h"
#include "polegate/roles.h"

#define B(x) (1u << POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x)
#define ROLE(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x

static const struct {
    int role;
    unsigned from, to;
    const char *shape;
} s_roles[] = {
    {ROLE(HOME_ADDRESS), B(PERSON), B(LOCATION), "PERSON -> LOCATION"},
    {ROLE(OTHER_ADDRESS), B(PERSON), B(LOCATION), "PERSON -> LOCATION"},
    {ROLE(SUSPECT), B(OCCURRENCE), B(PERSON), "OCCURRENCE -> PERSON"},
    {ROLE(VICTIM), B(OCCURRENCE), B(PERSON), "OCCURRENCE -> PERSON"},
    {ROLE(WITNESS), B(OCCURRENCE), B(PERSON), "OCCURRENCE -> PERSON"},
    {ROLE(OFFENDER), B(OCCURRENCE), B(PERSON), "OCCURRENCE -> PERSON"},
    {ROLE(REPORTER), B(OCCURRENCE), B(PERSON), "OCCURRENCE -> PERSON"},
    {ROLE(OCCURRED_AT), B(OCCURRENCE) | B(CUSTODY) | B(INTELLIGENCE), B(LOCATION),
     "OCCURRENCE, CUSTODY, INTELLIGENCE -> LOCATION"},
    {ROLE(STOLEN), B(OCCURRENCE), B(ITEM), "OCCURRENCE -> ITEM"},
    {ROLE(USED), B(OCCURRENCE), B(ITEM) | B(WEAPON), "OCCURRENCE -> ITEM, WEAPON"},
    {ROLE(VEHICLE_INVOLVED), B(OCCURRENCE), B(VEHICLE), "OCCURRENCE -> VEHICLE"},
    {ROLE(KEEPER), B(PERSON), B(VEHICLE), "PERSON -> VEHICLE"},
    {ROLE(OWNER), B(PERSON), B(ITEM) | B(WEAPON) | B(VEHICLE), "PERSON -> ITEM, WEAPON, VEHICLE"},
    {ROLE(USES), B(PERSON), B(TELEPHONE), "PERSON -> TELEPHONE"},
    {ROLE(DETAINED), B(CUSTODY), B(PERSON), "CUSTODY -> PERSON"},
    {ROLE(SUBJECT), B(INTELLIGENCE), B(PERSON) | B(VEHICLE) | B(TELEPHONE) | B(LOCATION),
     "INTELLIGENCE -> PERSON, VEHICLE, TELEPHONE, LOCATION"},
    {ROLE(ASSOCIATE), B(PERSON), B(PERSON), "PERSON -> PERSON"},
};

static int s_row(int role)
{
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (s_roles[i].role == role)
            return (int)i;
    return -1;
}

unsigned pg_role_from_kinds(int role)
{
    int r = s_row(role);
    return r < 0 ? 0 : s_roles[r].from;
}

unsigned pg_role_to_kinds(int role)
{
    int r = s_row(role);
    return r < 0 ? 0 : s_roles[r].to;
}

int pg_role_allows(int role, int from_kind, int to_kind)
{
    int r = s_row(role);
    if (r < 0 || from_kind <= 0 || from_kind > 31 || to_kind <= 0 || to_kind > 31)
        return 0;
    return (s_roles[r].from & (1u << from_kind)) && (s_roles[r].to & (1u << to_kind));
}

int pg_role_only_target(int role)
{
    unsigned to = pg_role_to_kinds(role);
    if (!to || (to & (to - 1)))
        return 0; /* unknown role, or several kinds */
    int kind = 0;
    while (to >>= 1)
        kind++;
    return kind;
}

const char *pg_role_shape(int role)
{
    int r = s_row(role);
    return r < 0 ? "" : s_roles[r].shape;
}

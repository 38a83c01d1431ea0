/* Which entity kinds each canonical link role may link (docs/formats/codes.md ROLE,
 * "from -> to"): a fact of the canonical model that both adapters check. */
#ifndef POLEGATE_ROLES_H
#define POLEGATE_ROLES_H

/* The kinds the role's "from" (or "to") end may be, as a bit set of 1u << EntityKind;
 * 0 for a role the table does not have. */
unsigned pg_role_from_kinds(int role);
unsigned pg_role_to_kinds(int role);

/* May role link an entity of kind from_kind to one of kind to_kind? */
int pg_role_allows(int role, int from_kind, int to_kind);

/* The one kind role may point at, or 0 when it allows several (or is unknown). */
int pg_role_only_target(int role);

/* codes.md's "from -> to" column for role, e.g. "PERSON -> LOCATION"; "" when the
 * role is unknown. Borrowed, static. */
const char *pg_role_shape(int role);

#endif

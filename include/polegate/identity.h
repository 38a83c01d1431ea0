/* Stable entity and link identifiers: name-based UUIDv5 in the polegate namespace. */
#ifndef POLEGATE_IDENTITY_H
#define POLEGATE_IDENTITY_H

/* The polegate namespace UUID: uuid5(NAMESPACE_URL, "urn:polegate:pole:v1"). */
#define PG_IDENTITY_NAMESPACE "19d2bfc8-4ff4-5442-bc13-c99cd15d5dc1"

/* Text form of a UUID: 36 characters and a NUL. */
#define PG_UUID_STR_SIZE 37

/* The UUID of an entity, from the name "<force>/<system>/<native_type>/<native_id>"
 * (e.g. "ESX/ATHENA/PERSON/P0000123456", "MER/NICHE/GID/7F3A9C2E4B1D0A66"). The
 * same record always gets the same id, on every gateway and every run. Writes lower
 * case text into out. 0, or PG_EINVALID when a part is empty or holds '/'. */
int pg_identity_entity(const char *force, const char *system, const char *native_type,
                       const char *native_id, char out[PG_UUID_STR_SIZE]);

/* The UUID of the link (from, role, to), from the name "link/<from>/<ROLE>/<to>"
 * where ROLE is the LinkRole short name ("HOME_ADDRESS"). 0 or PG_EINVALID. */
int pg_identity_link(const char *from_uuid, int role, const char *to_uuid,
                     char out[PG_UUID_STR_SIZE]);

#endif

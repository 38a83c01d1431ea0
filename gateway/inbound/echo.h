/* pg_echo: the intake's filter of the RMS's echoes of partner records (the one piece
 * of the inbound direction the outbound intake needs). */
#ifndef POLEGATE_GATEWAY_ECHO_H
#define POLEGATE_GATEWAY_ECHO_H

#include <stddef.h>

#include "polegate/adapter.h"

typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

/*
 * The local RMS exports what it imported: partner records come back in its change
 * feed, with the ids we gave them (gateway/inbound/idstore.h) and the originating force in ATX
 * header.orgUnit / NX5 Force. They are not ours and must never be published as ours
 * (that would loop them between two gateways). The intake calls pg_echo_filter on
 * what it decoded (with no force check in the decoder):
 *
 * - an entity change whose native id is an id we gave a partner record, and a link
 *   change from such a record, is removed (an echo);
 * - a link from one of our records to a partner record stays ours, and its target is
 *   rewritten to the partner's entity (the UUID the partner knows it by; the link id
 *   follows), so that partners can resolve it;
 * - a message that names another force is an echo when every change in it is one;
 *   otherwise it is refused with the decoder's reason for another force.
 */
typedef struct pg_echo pg_echo;

/* A filter reading the id map of the partner pipeline in store (borrowed, must
 * outlive it). NULL with errstr. */
pg_echo *pg_echo_new(pg_store *store, const pg_adapter_ops *adapter, const char *force,
                     char *errstr, size_t errstr_size);
/* Frees it; sets *p NULL; NULL-safe. */
void pg_echo_destroy(pg_echo **p);
/* Filter cs in txn (read access is enough). 0 with *dropped changes removed (cs may
 * be left empty); PG_EINVALID with the reason when the message names another force and
 * is not an echo; PG_ESTORE / PG_ENOMEM. */
int pg_echo_filter(pg_echo *self, pg_store_txn *txn, pg_changeset *cs, size_t *dropped,
                   char *errstr, size_t errstr_size);

#endif

/* The Kafka wire contract: every record header name polegate writes or reads, and
 * every pg-type value. docs/topics.md describes each; partners' clients use these
 * names, so a name here never changes within a major version (.v1). */
#ifndef POLEGATE_WIRE_H
#define POLEGATE_WIRE_H

/* ---- headers of every canonical update (polegate.<force>.<destination>.pole.v1) */

/* Which message the value is: one of the PG_TYPE_ values below. */
#define PG_HDR_TYPE "pg-type"
/* The model's package (PG_SCHEMA_VERSION), i.e. its major version. */
#define PG_HDR_SCHEMA "pg-schema"
/* The force code of the record's origin ("ESX"); also on dead letters. */
#define PG_HDR_ORIGIN_FORCE "pg-origin-force"
/* "<classification>;<handling>" in the ATX spelling ("OFFICIAL-SENSITIVE;P"). */
#define PG_HDR_MARKING "pg-marking"
/* "UPSERT" or "DELETE". */
#define PG_HDR_OPERATION "pg-operation"
/* The update's version, in decimal. */
#define PG_HDR_VERSION "pg-version"
/* Provenance: the agreement the record was sent under, the sender's policy version,
 * and the fields removed for this destination ("none" when none). */
#define PG_HDR_AGREEMENT "pg-agreement"
#define PG_HDR_POLICY_VERSION "pg-policy-version"
#define PG_HDR_REDACTIONS "pg-redactions"

/* The values of pg-type and pg-schema. */
#define PG_TYPE_ENTITY "polegate.pole.v1.EntityUpdate"
#define PG_TYPE_LINK "polegate.pole.v1.LinkUpdate"
#define PG_SCHEMA_VERSION "polegate.pole.v1"

/* ---- headers of a dead letter (polegate.<force>.dlq.v1), besides pg-origin-force */

#define PG_HDR_REASON "pg-reason"           /* "<member path>: <rule>" */
#define PG_HDR_RECEIVED_AT "pg-received-at" /* RFC 3339, UTC */
#define PG_HDR_FORMAT "pg-format"           /* the adapter's format: "atx", "nx5" */
#define PG_HDR_DLQ_ID "pg-dlq-id"           /* the local dead letter's id */
#define PG_HDR_TRUNCATED "pg-truncated"     /* the full length, when the value was cut */

#endif

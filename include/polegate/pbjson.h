/* Protobuf <-> JSON following protobuf's proto3 JSON mapping, driven by the protobuf-c
 * descriptors: one generic encoder for every canonical message. */
#ifndef POLEGATE_PBJSON_H
#define POLEGATE_PBJSON_H

#include <protobuf-c/protobuf-c.h>

#include "polegate/buf.h"

/* Append msg as one line of JSON (no trailing newline): lowerCamelCase field names,
 * enums by name, 64-bit integers as strings, google.protobuf.Timestamp as RFC 3339
 * UTC, default-valued scalars omitted (proto3). 0 or PG_ENOMEM. */
int pg_pbjson_encode(const ProtobufCMessage *msg, pg_buf *out);

#endif

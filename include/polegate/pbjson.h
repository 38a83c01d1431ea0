/* Protobuf <-> JSON following protobuf's proto3 JSON mapping, driven by the protobuf-c
 * descriptors: one generic encoder for every canonical message. */
#ifndef POLEGATE_PBJSON_H
#define POLEGATE_PBJSON_H

#include <protobuf-c/protobuf-c.h>

#include "polegate/buf.h"

/* Append msg as one line of JSON (no trailing newline): lowerCamelCase field names,
 * enums by name, 64-bit integers as strings, google.protobuf.Timestamp as RFC 3339
 * UTC, default-valued scalars omitted (proto3), as protoc's json_format writes it.
 * 0, PG_ENOMEM, or PG_EINVALID when msg holds what JSON cannot carry (a string that
 * is not UTF-8, a Timestamp outside years 1-9999); on error out is left as it was. */
int pg_pbjson_encode(const ProtobufCMessage *msg, pg_buf *out);

#endif

// The replay output formats: one event envelope as a JSON line or as a CSV record. Every source of
// replayed events (the PostgreSQL event store, a Kafka topic) writes through these functions, so
// the same range of events gives byte-identical output whatever it was read from.
//
// The exact format (also in docs/REPLAY.md):
//   JSON lines: one compact object per event, fields in this order, then "\n":
//     {"position":N,"stream_id":S,"stream_version":N,"type":S,"schema_version":N,
//      "occurred_at":S,"event_id":S,"correlation_id":S,"causation_id":S,"actor":S|null,
//      "data":D}
//   CSV (RFC 4180): the header line, then one record per event with the same fields in the same
//     order; records end with CRLF; a field is quoted ("", with quotes doubled) when it holds a
//     comma, a quote, CR or LF; a null actor is an empty field; data is the JSON text D.
//   occurred_at is RFC 3339 UTC with exactly six fractional digits: 2026-11-21T20:52:26.123456Z.
//   Ids are lower-case canonical UUIDs. D is the payload exactly as PostgreSQL prints a jsonb value
//   (see canonical_jsonb below). Strings are escaped as jsonb escapes them.
#pragma once

#include "shop/events/envelope.h"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace shop::replay {

enum class Format { kJsonLines, kCsv };

// One event as replayed: the envelope the relay also publishes to Kafka (shop/events/envelope.h).
using Envelope = events::EnvelopeView;

// What comes before the first record: the CSV header line (with CRLF); nothing for JSON lines.
std::string_view preamble(Format format);

// Appends one record (with its line ending) to `out`.
void append_record(std::string& out, Format format, const Envelope& e);
void append_json_line(std::string& out, const Envelope& e);
void append_csv_record(std::string& out, const Envelope& e);

// Appends `text` as a JSON string (with its quotes), escaped the way PostgreSQL escapes strings in
// jsonb output: \" \\ \b \f \n \r \t, other characters below 0x20 as \u00xx (lower-case hex),
// everything else (non-ASCII UTF-8 included) as is.
void append_json_string(std::string& out, std::string_view text);

// Microseconds since 1970-01-01T00:00:00Z as RFC 3339 UTC with six fractional digits (the form
// of occurred_at). Years outside 0001..9999 are refused (std::out_of_range).
void append_timestamp(std::string& out, std::int64_t unix_micros);
std::string format_timestamp(std::int64_t unix_micros);
// Appends the 36-character canonical lower-case form of a 16-byte UUID.
void append_uuid(std::string& out, const unsigned char* bytes16);

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Rewrites any JSON text into the text PostgreSQL prints for the same value as jsonb, so that a
// source that does not read from PostgreSQL (a Kafka topic) can print the same bytes:
//   - object keys sorted by length, then byte by byte; of duplicate keys the last one wins;
//   - ", " between members and elements, ": " after keys, no other whitespace; {} and [];
//   - strings escaped as append_json_string does (\uXXXX escapes of the input decoded to UTF-8);
//   - numbers as PostgreSQL's numeric prints them: no exponent, no leading "+" or zeros, the
//     digits after the point as written once the exponent is applied ("1.50" stays "1.50",
//     "1.5e1" is "15", "1e-2" is "0.01"), "-0" is "0".
// Throws JsonError on text that is not JSON or that jsonb refuses (\u0000, invalid surrogate
// pairs, an exponent beyond +-1000, invalid UTF-8).
std::string canonical_jsonb(std::string_view json);

}  // namespace shop::replay

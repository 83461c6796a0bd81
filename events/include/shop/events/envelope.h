// The event envelope as one JSON object: what the relay publishes to Kafka as a message value
// and what `shopctl replay` prints as one JSON line (followed by "\n"), so the two agree byte for
// byte. Fields, in this order:
//   {"position":N,"stream_id":S,"stream_version":N,"type":S,"schema_version":N,
//    "occurred_at":S,"event_id":S,"correlation_id":S,"causation_id":S,"actor":S|null,"data":D}
// D is the payload as PostgreSQL prints the stored jsonb value; strings are escaped the way
// PostgreSQL escapes them in jsonb output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shop/events/events.h"

namespace shop::events {

// Appends `text` as a JSON string (with its quotes), escaped as PostgreSQL's jsonb output does:
// \" \\ \b \f \n \r \t, other characters below 0x20 as \u00xx (lower-case hex), everything else
// (non-ASCII UTF-8 included) as is.
void append_json_string(std::string& out, std::string_view text);

// One event's envelope, as views (readers that decode rows without copying fill it). The views
// must stay valid while it is formatted.
struct EnvelopeView {
  std::int64_t position = 0;
  std::string_view stream_id;
  std::int64_t stream_version = 0;
  std::string_view type;
  std::int32_t schema_version = 1;
  std::string_view occurred_at;  // RFC 3339 UTC, six fractional digits
  std::string_view event_id;
  std::string_view correlation_id;
  std::string_view causation_id;
  std::optional<std::string_view> actor;
  std::string_view data;  // jsonb text as PostgreSQL prints it
};

// Appends the envelope (no line ending).
void append_envelope_json(std::string& out, const EnvelopeView& e);
// The same for a stored event. `e.data` must be jsonb text as PostgreSQL prints it (what the
// event store's readers return).
void append_envelope_json(std::string& out, const RecordedEvent& e);

}  // namespace shop::events

// The event envelope as one JSON object: what the relay publishes to Kafka as a message value
// and what `shopctl replay` prints as one JSON line (followed by "\n"), so the two agree byte for
// byte. Fields, in this order:
//   {"position":N,"stream_id":S,"stream_version":N,"type":S,"schema_version":N,
//    "occurred_at":S,"event_id":S,"correlation_id":S,"causation_id":S,"actor":S|null,"data":D}
// D is the payload as PostgreSQL prints the stored jsonb value; strings are escaped the way
// PostgreSQL escapes them in jsonb output.
#pragma once

#include <string>
#include <string_view>

#include "shop/events/events.h"

namespace shop::events {

// Appends `text` as a JSON string (with its quotes), escaped as PostgreSQL's jsonb output does:
// \" \\ \b \f \n \r \t, other characters below 0x20 as \u00xx (lower-case hex), everything else
// (non-ASCII UTF-8 included) as is.
void append_json_string(std::string& out, std::string_view text);

// Appends the envelope of `e` (no line ending). `e.data` must be jsonb text as PostgreSQL prints
// it (what the event store's readers return).
void append_envelope_json(std::string& out, const RecordedEvent& e);

}  // namespace shop::events

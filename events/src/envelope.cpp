#include "shop/events/envelope.h"

#include <charconv>

namespace shop::events {

namespace {

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of characters that need no escape
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

void append_envelope_json(std::string& out, const EnvelopeView& e) {
  out.append("{\"position\":");
  append_int(out, e.position);
  out.append(",\"stream_id\":");
  append_json_string(out, e.stream_id);
  out.append(",\"stream_version\":");
  append_int(out, e.stream_version);
  out.append(",\"type\":");
  append_json_string(out, e.type);
  out.append(",\"schema_version\":");
  append_int(out, e.schema_version);
  out.append(",\"occurred_at\":");
  append_json_string(out, e.occurred_at);
  out.append(",\"event_id\":");
  append_json_string(out, e.event_id);
  out.append(",\"correlation_id\":");
  append_json_string(out, e.correlation_id);
  out.append(",\"causation_id\":");
  append_json_string(out, e.causation_id);
  out.append(",\"actor\":");
  if (e.actor) {
    append_json_string(out, *e.actor);
  } else {
    out.append("null");
  }
  out.append(",\"data\":");
  out.append(e.data);
  out.push_back('}');
}

void append_envelope_json(std::string& out, const RecordedEvent& e) {
  EnvelopeView v;
  v.position = e.position;
  v.stream_id = e.stream_id;
  v.stream_version = e.stream_version;
  v.type = e.type;
  v.schema_version = e.schema_version;
  v.occurred_at = e.occurred_at;
  v.event_id = e.event_id;
  v.correlation_id = e.correlation_id;
  v.causation_id = e.causation_id;
  if (e.actor) v.actor = *e.actor;
  v.data = e.data;
  append_envelope_json(out, v);
}

}  // namespace shop::events

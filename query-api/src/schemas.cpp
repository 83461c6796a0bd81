// GET /api/schemas/events: every event type with its schema version, stream category and JSON
// Schema, for analysts reading replays and consumers of the event log. Public and read-only. The
// schemas are compiled in, so the answer never touches the database and never changes while the
// process runs: it is rendered once. `shopctl schemas --json` prints the same document.
#include <variant>

#include "handlers.h"
#include "shop/events/events.h"
#include "shop/infra/schema.h"

namespace shop::query {

namespace {

struct TypeInfo {
  std::string_view type;
  int schema_version;
  std::string_view category;
};

template <class... Ts>
std::vector<TypeInfo> type_infos(std::variant<Ts...>*) {
  return {TypeInfo{Ts::kType, Ts::kSchemaVersion, Ts::kCategory}...};
}

std::string render_event_schemas() {
  auto types = type_infos(static_cast<events::Event*>(nullptr));
  std::sort(types.begin(), types.end(),
            [](const TypeInfo& a, const TypeInfo& b) { return a.type < b.type; });
  const auto& registry = infra::SchemaRegistry::instance();
  JsonOut out;
  auto& w = out.w();
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& t : types) {
    w.StartObject();
    w.Key("type");
    write_text(w, t.type);
    w.Key("schema_version");
    w.Int(t.schema_version);
    w.Key("category");
    write_text(w, t.category);
    w.Key("schema");
    json::Document schema;
    const auto text = registry.text("events/" + std::string(t.type));
    if (!text.empty() && json::parse(text, schema).empty()) {
      schema.Accept(w);
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out.str();
}

}  // namespace

void add_schema_routes(http::Router& router) {
  router.add("GET", "/api/schemas/events", [](http::Request&) {
    static const std::string body = render_event_schemas();
    // Not a read model: no X-Min-Position wait and no X-Position. The body changes only with a
    // new build, so caches may keep it for a while.
    return http::json(200, body).with_header("Cache-Control", "public, max-age=300");
  });
}

}  // namespace shop::query

#include "analyst.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <system_error>
#include <variant>

#include "replay/format.h"
#include "replay/kafka_source.h"
#include "replay/output.h"
#include "replay/progress.h"
#include "replay/store_source.h"
#include "shop/events/events.h"
#include "shop/events/json.h"
#include "shop/infra/schema.h"

namespace shop::tools {

namespace {

constexpr const char* kTimestampHelp =
    "an RFC 3339 UTC timestamp such as 2026-11-21T20:52:26Z or 2026-11-21T20:52:26.123456Z";

std::string join(const std::vector<std::string_view>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

// --- the event types and their schemas -------------------------------------------------------

struct EventTypeInfo {
  std::string_view type;
  int schema_version;
  std::string_view category;
};

template <class... Ts>
std::vector<EventTypeInfo> type_infos(std::variant<Ts...>*) {
  return {EventTypeInfo{Ts::kType, Ts::kSchemaVersion, Ts::kCategory}...};
}

// Every event type this build knows, by name.
const std::map<std::string_view, EventTypeInfo>& event_types() {
  static const auto types = [] {
    std::map<std::string_view, EventTypeInfo> m;
    for (const auto& t : type_infos(static_cast<events::Event*>(nullptr))) m.emplace(t.type, t);
    return m;
  }();
  return types;
}

std::vector<std::string_view> known_type_names() {
  std::vector<std::string_view> names;
  for (const auto& [name, info] : event_types()) names.push_back(name);
  return names;
}

std::string_view schema_text(std::string_view type) {
  return infra::SchemaRegistry::instance().text("events/" + std::string(type));
}

// The unknown names among `types`, for the error message.
std::vector<std::string_view> unknown_types(const std::vector<std::string>& types) {
  std::vector<std::string_view> unknown;
  for (const auto& t : types) {
    if (!event_types().contains(t)) unknown.push_back(t);
  }
  return unknown;
}

// --- timestamps ------------------------------------------------------------------------------

bool digits(std::string_view s, std::size_t from, std::size_t count, int& value) {
  if (from + count > s.size()) return false;
  value = 0;
  for (std::size_t i = from; i < from + count; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_utc_timestamp(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00); RFC 3339 allows 't' and 'z' in lower case too.
  int year, month, day, hour, minute, second;
  if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
      !digits(s, 17, 2, second)) {
    return std::nullopt;
  }
  std::size_t i = 19;
  std::int64_t micros = 0;
  if (s[i] == '.') {
    ++i;
    std::size_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (++n > 6) return std::nullopt;
      micros = micros * 10 + (s[i] - '0');
      ++i;
    }
    if (n == 0) return std::nullopt;
    for (; n < 6; ++n) micros *= 10;
  }
  const std::string_view zone = s.substr(i);
  if (zone != "Z" && zone != "z" && zone != "+00:00") return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (year < 1 || !ymd.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  const auto t = sys_days{ymd} + hours{hour} + minutes{minute} + seconds{second};
  return duration_cast<microseconds>(t.time_since_epoch()).count() + micros;
}

std::string event_schemas_json(const std::vector<std::string>& types) {
  rapidjson::StringBuffer buffer;
  json::Writer w(buffer);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (const auto& [name, info] : event_types()) {
    if (!types.empty() && std::find(types.begin(), types.end(), name) == types.end()) continue;
    w.StartObject();
    w.Key("type");
    w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    w.Key("schema_version");
    w.Int(info.schema_version);
    w.Key("category");
    w.String(info.category.data(), static_cast<rapidjson::SizeType>(info.category.size()));
    w.Key("schema");
    json::Document schema;
    if (const auto text = schema_text(name); !text.empty() && json::parse(text, schema).empty()) {
      schema.Accept(w);
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

// --- replay -----------------------------------------------------------------------------------

CLI::Validator position_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size() || v < 0) {
          return "wants a global position (a whole number, 0 or more), not '" + text + "'";
        }
        return {};
      },
      "N");
}

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& a) {
  auto* cmd = app.add_subcommand(
      "replay",
      "write the events committed before the replay started, in global position order, as JSON "
      "lines or CSV (filters combine with AND; a repeated filter matches any of its values)");
  cmd->footer(
      "Only events that are final are written: those of transactions that had ended when the "
      "replay started (the event store's horizon). Events committed while it runs are not "
      "included; run it again for them.\n"
      "Examples:\n"
      "  shopctl replay --output events.jsonl\n"
      "  shopctl replay --category order --since 2026-11-01T00:00:00Z --format csv -o orders.csv\n"
      "  shopctl replay --type OrderPlaced --type OrderCancelled --from-position 1000\n");
  cmd->add_option("--source", a.source,
                  "store (the PostgreSQL event store, default) or kafka (the relay's topics, read "
                  "from offset 0 without joining any consumer group)")
      ->type_name("SOURCE")
      ->check(CLI::IsMember({"store", "kafka"}));
  cmd->add_option("--brokers", a.brokers, "Kafka bootstrap servers (default: KAFKA_BROKERS)")
      ->type_name("HOST:PORT");
  cmd->add_option("--topic-prefix", a.topic_prefix,
                  "Kafka topic prefix (default: KAFKA_TOPIC_PREFIX, else shop)")
      ->type_name("PREFIX");
  cmd->add_option("--format", a.format, "jsonl (one JSON object per line, default) or csv")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"jsonl", "csv"}));
  cmd->add_option("-o,--output", a.output,
                  "write to FILE instead of stdout (it appears complete, or not at all)")
      ->type_name("FILE");
  cmd->add_option("--from-position", a.from_position, "first global position (inclusive)")
      ->type_name("N")
      ->check(position_validator());
  cmd->add_option("--to-position", a.to_position, "last global position (inclusive)")
      ->type_name("N")
      ->check(position_validator());
  cmd->add_option("--since", a.since,
                  "events that occurred at or after this RFC 3339 UTC time, e.g. "
                  "2026-11-21T00:00:00Z")
      ->type_name("TIME");
  cmd->add_option("--until", a.until, "events that occurred before this RFC 3339 UTC time")
      ->type_name("TIME");
  cmd->add_option("--stream", a.streams, "stream id, e.g. order-<uuid> (repeatable)")
      ->type_name("ID")
      ->allow_extra_args(false)
      ->delimiter(',');
  cmd->add_option("--category", a.categories,
                  "stream category: user, category, product, cart, order, payment (repeatable)")
      ->type_name("CATEGORY")
      ->allow_extra_args(false)
      ->delimiter(',');
  cmd->add_option("--type", a.types, "event type, e.g. OrderPlaced (repeatable)")
      ->type_name("TYPE")
      ->allow_extra_args(false)
      ->delimiter(',');
  return cmd;
}

int run_replay_command(const ReplayArgs& a, const infra::Config& config, const Console& console) {
  std::ostream& err = *console.err;
  replay::Filter filter;
  filter.from_position = a.from_position;
  filter.to_position = a.to_position;
  if (a.from_position && a.to_position && *a.from_position > *a.to_position) {
    err << "error: --from-position is after --to-position\n";
    return kExitUsage;
  }
  for (const auto& [flag, text, target] : {std::tuple{"--since", &a.since, &filter.since_micros},
                                           std::tuple{"--until", &a.until, &filter.until_micros}}) {
    if (!*text) continue;
    *target = parse_utc_timestamp(**text);
    if (!*target) {
      err << "error: " << flag << " wants " << kTimestampHelp << ", not '" << **text << "'\n";
      return kExitUsage;
    }
  }
  if (filter.since_micros && filter.until_micros && *filter.since_micros >= *filter.until_micros) {
    err << "error: --since must be before --until\n";
    return kExitUsage;
  }
  for (const auto& s : a.streams) {
    if (s.empty()) {
      err << "error: --stream wants a stream id such as order-<uuid>\n";
      return kExitUsage;
    }
  }
  for (const auto& c : a.categories) {
    if (c.empty() || c.find('-') != std::string::npos) {
      err << "error: --category wants the part of a stream id before its first '-' (such as "
             "order), not '"
          << c << "'\n";
      return kExitUsage;
    }
  }
  if (const auto unknown = unknown_types(a.types); !unknown.empty()) {
    err << "error: unknown event type " << join(unknown, ", ")
        << "; known types: " << join(known_type_names(), ", ") << "\n";
    return kExitUsage;
  }
  filter.streams = a.streams;
  filter.categories = a.categories;
  filter.types = a.types;
  const auto format = a.format == "csv" ? replay::Format::kCsv : replay::Format::kJsonLines;

  try {
    std::function<void(replay::Sink&, replay::ProgressLine&)> run;
    if (a.source == "kafka") {
      const std::string brokers =
          a.brokers.empty() ? config.get_or("KAFKA_BROKERS", "") : a.brokers;
      if (brokers.empty()) {
        err << "error: --source kafka needs --brokers or KAFKA_BROKERS\n";
        return kExitUsage;
      }
      const std::string prefix = a.topic_prefix.empty()
                                     ? config.get_or("KAFKA_TOPIC_PREFIX", "shop")
                                     : a.topic_prefix;
      run = [&, brokers, prefix](replay::Sink& sink, replay::ProgressLine& progress) {
        replay::replay_from_kafka(brokers, prefix, filter, format, sink, &progress);
      };
    } else {
      const std::string url = config.require("DATABASE_URL");
      run = [&, url](replay::Sink& sink, replay::ProgressLine& progress) {
        replay::replay_from_store(url, filter, format, sink, &progress);
      };
    }
    replay::ProgressLine progress(err, console.err_is_terminal);
    if (a.output.empty()) {
      replay::FdSink sink(console.out_fd);
      run(sink, progress);
    } else {
      replay::OutputFile file(a.output);
      run(file.sink(), progress);
      file.commit();
    }
    return 0;
  } catch (const std::exception& e) {
    if (console.err_is_terminal) err << "\n";  // below a progress line
    err << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

// --- schemas -----------------------------------------------------------------------------------

CLI::App* add_schemas_command(CLI::App& app, SchemasArgs& a) {
  auto* cmd = app.add_subcommand(
      "schemas",
      "list the event types with their schema versions, or print the JSON Schema of the types "
      "named");
  cmd->add_option("type", a.types, "event types whose schema to print (default: list them all)");
  cmd->add_flag("--json", a.json,
                "print {\"items\": [{type, schema_version, category, schema}]}, as GET "
                "/api/schemas/events of the query API does");
  return cmd;
}

int run_schemas_command(const SchemasArgs& a, const Console& console) {
  std::ostream& out = *console.out;
  std::ostream& err = *console.err;
  try {
    if (const auto unknown = unknown_types(a.types); !unknown.empty()) {
      err << "error: unknown event type " << join(unknown, ", ")
          << "; known types: " << join(known_type_names(), ", ") << "\n";
      return kExitUsage;
    }
    if (a.json) {
      out << event_schemas_json(a.types) << "\n";
    } else if (!a.types.empty()) {
      for (const auto& t : a.types) {
        auto text = std::string(schema_text(t));
        while (!text.empty() && text.back() == '\n') text.pop_back();
        out << text << "\n";
      }
    } else {
      std::size_t width = 4;
      for (const auto& [name, info] : event_types()) width = std::max(width, name.size());
      out << std::string("TYPE") + std::string(width - 4 + 2, ' ') << "VERSION  CATEGORY  "
          << "DESCRIPTION\n";
      for (const auto& [name, info] : event_types()) {
        json::Document schema;
        std::string description;
        if (json::parse(schema_text(name), schema).empty()) {
          description = json::get_string(schema, "description");
        }
        std::string category(info.category);
        category.resize(std::max<std::size_t>(category.size(), 8), ' ');
        std::string version = std::to_string(info.schema_version);
        version.resize(7, ' ');
        out << name << std::string(width - name.size() + 2, ' ') << version << "  " << category
            << "  " << description << "\n";
      }
    }
    out.flush();
    return out ? 0 : kExitFailure;
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

// --- command lines -----------------------------------------------------------------------------

int parse_error_exit(const CLI::App& app, const CLI::ParseError& e, const Console& console) {
  const int code = app.exit(e, *console.out, *console.err);
  return code == 0 ? 0 : kExitUsage;
}

int run_analyst_command_line(const std::vector<std::string>& args, const infra::Config& config,
                             const Console& console) {
  CLI::App app{"shopctl"};
  app.require_subcommand(1);
  ReplayArgs replay_args;
  SchemasArgs schemas_args;
  auto* replay = add_replay_command(app, replay_args);
  auto* schemas = add_schemas_command(app, schemas_args);
  try {
    // CLI11 takes the arguments in reverse order when given a vector.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return parse_error_exit(app, e, console);
  }
  if (*replay) return run_replay_command(replay_args, config, console);
  if (*schemas) return run_schemas_command(schemas_args, console);
  return kExitUsage;
}

}  // namespace shop::tools

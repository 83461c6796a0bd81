// The analysts' commands of shopctl: `replay` (the event log as JSON lines or CSV) and `schemas`
// (the event types and their JSON Schemas). main() and the tests go through the same functions:
// add_*_command declares a command and its flags on a CLI11 app, run_*_command carries it out.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "shop/infra/config.h"

namespace CLI {
class App;
class ParseError;
}  // namespace CLI

namespace shop::tools {

// Exit codes: 0 done, 1 failed (database, output), 2 the command line is wrong.
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Where a command writes: records to a descriptor (stdout in main), messages to a stream.
struct Console {
  int out_fd = 1;
  std::ostream* out = nullptr;  // text output (schemas); records go to out_fd
  std::ostream* err = nullptr;
  bool err_is_terminal = false;  // shows replay's progress line
};

struct ReplayArgs {
  std::string source = "store";  // or "kafka"
  std::string brokers;           // --source kafka: default KAFKA_BROKERS
  std::string topic_prefix;      // --source kafka: default KAFKA_TOPIC_PREFIX, else "shop"
  std::string format = "jsonl";
  std::string output;
  std::optional<std::int64_t> from_position, to_position;
  std::optional<std::string> since, until;
  std::vector<std::string> streams, categories, types;
};
CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args);
// Needs DATABASE_URL from `config` (the store) or KAFKA_BROKERS (or --brokers) for Kafka. Never
// throws.
int run_replay_command(const ReplayArgs& args, const infra::Config& config, const Console& console);

struct SchemasArgs {
  std::vector<std::string> types;  // none: every type
  bool json = false;
};
CLI::App* add_schemas_command(CLI::App& app, SchemasArgs& args);
// Needs no configuration: the schemas are compiled in. Never throws.
int run_schemas_command(const SchemasArgs& args, const Console& console);

// Reports a command-line error the way CLI11 does; returns 0 for --help, kExitUsage otherwise.
int parse_error_exit(const CLI::App& app, const CLI::ParseError& e, const Console& console);

// Parses and runs one analyst command line, e.g. {"replay", "--type", "OrderPlaced"}: the tests'
// way into exactly what shopctl runs.
int run_analyst_command_line(const std::vector<std::string>& args, const infra::Config& config,
                             const Console& console);

// "2026-11-21T20:52:26Z", "2026-11-21T20:52:26.123456Z" (or +00:00): microseconds since the Unix
// epoch. Anything else (another offset, no offset, more than six fractional digits, a date or
// time that does not exist) is nullopt.
std::optional<std::int64_t> parse_utc_timestamp(std::string_view text);

// The event schema catalogue as JSON, sorted by type: {"items":[{"type", "schema_version",
// "category", "schema"}]}; only `types` when not empty. The query API serves the same document.
std::string event_schemas_json(const std::vector<std::string>& types = {});

}  // namespace shop::tools

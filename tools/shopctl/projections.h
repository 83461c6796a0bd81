// The operators' commands of shopctl around the projections: `rebuild` (a new version of a
// projection's read models built beside the live one, then switched to, with no downtime; see
// projector/include/shop/projector/rebuild.h) and `status` (each projection's version, place,
// lag and rebuild). main() and the tests go through the same functions.
#pragma once

#include <string>
#include <vector>

#include "analyst.h"

namespace CLI {
class App;
}  // namespace CLI

namespace shop::tools {

struct RebuildArgs {
  std::vector<std::string> projections;
  bool all = false;
  bool verify = false;
  bool force = false;
  bool cancel = false;
  bool per_event = false;  // no bulk phase
};
CLI::App* add_rebuild_command(CLI::App& app, RebuildArgs& args);
// Exit status: 0 every projection rebuilt and switched (or cancelled), 1 a failure, a refusal,
// or differences found by --verify without --force, 2 a wrong command line. SIGINT/SIGTERM stop
// the rebuild at its next transaction (the next run continues it). Never throws.
int run_rebuild_command(const RebuildArgs& args, const std::string& database_url,
                        const Console& console);

struct StatusArgs {
  bool json = false;
};
CLI::App* add_status_command(CLI::App& app, StatusArgs& args);
// A table, or with --json the document GET /api/admin/projections serves. Never throws.
int run_status_command(const StatusArgs& args, const std::string& database_url,
                       const Console& console);

}  // namespace shop::tools

#include "projections.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <pqxx/pqxx>

#include "shop/infra/pg.h"
#include "shop/projector/rebuild.h"

namespace shop::tools {

namespace {

std::atomic<bool> g_stop{false};
void on_stop_signal(int) {
  g_stop = true;
}

std::string grouped(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return v < 0 ? "-" + out : out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

void print_verify(std::ostream& out, const projector::VerifyReport& report) {
  if (report.equal()) {
    out << "verify: equal at position " << grouped(report.position) << " (" << report.tables.size()
        << " tables compared row for row)\n";
    return;
  }
  out << "verify: " << grouped(report.differing_rows()) << " differing rows at position "
      << grouped(report.position) << "\n";
  for (const auto& t : report.tables) {
    if (t.only_live == 0 && t.only_new == 0) continue;
    out << "  " << t.table << ": " << grouped(t.only_live) << " rows only in the live version, "
        << grouped(t.only_new) << " only in the new one\n";
    for (const auto& row : t.live_samples) out << "    live: " << row << "\n";
    for (const auto& row : t.new_samples) out << "    new:  " << row << "\n";
  }
}

// One projection; returns its exit status.
int rebuild_one(const std::string& name, const RebuildArgs& args, const std::string& url,
                const Console& console) {
  std::ostream& out = *console.out;
  std::ostream& err = *console.err;
  if (args.cancel) {
    if (projector::cancel_rebuild(url, name)) {
      out << name << ": the rebuild was cancelled (its version is dropped)\n";
    } else {
      out << name << ": no rebuild to cancel\n";
    }
    return 0;
  }
  projector::RebuildOptions o;
  o.verify = args.verify;
  o.force = args.force;
  o.bulk = !args.per_event;
  o.runner = "shopctl";
  o.stop = &g_stop;
  auto next_draw = std::chrono::steady_clock::now();
  bool drawn = false;
  if (console.err_is_terminal) {
    o.on_progress = [&](const projector::RebuildProgress& p) {
      const auto now = std::chrono::steady_clock::now();
      if (now < next_draw && p.phase != "done") return;
      next_draw = now + std::chrono::milliseconds(250);
      err << "\rrebuild " << p.projection << " v" << p.version << ": " << projector::describe(p)
          << "\033[K" << std::flush;
      drawn = true;
    };
  }
  const auto end_line = [&] {
    if (drawn) err << "\n";
    drawn = false;
  };
  try {
    const auto r = projector::rebuild(url, name, o);
    end_line();
    if (r.verify) print_verify(out, *r.verify);
    if (!r.switched) {
      err << name << ": not switched: --verify found differences; version " << r.new_version
          << " stays beside the live version " << r.old_version
          << " for inspection; run again with --verify --force to switch anyway, or with "
             "--cancel to drop it\n";
      return kExitFailure;
    }
    out << name << ": version " << r.new_version << " is live (was " << r.old_version
        << "): " << grouped(r.events) << " events in " << fixed(r.seconds, 1) << " s ("
        << grouped(r.seconds > 0
                       ? static_cast<std::int64_t>(static_cast<double>(r.events) / r.seconds)
                       : r.events)
        << " events/s)";
    if (r.resumed) out << ", continued from position " << grouped(r.resumed_from);
    out << "; reads waited at most " << fixed(r.switch_seconds, 3) << " s at the switch; ";
    out << (r.old_dropped ? "the old version is dropped\n"
                          : "the old version could not be dropped yet (the next rebuild does)\n");
    return 0;
  } catch (const projector::RebuildStopped& e) {
    end_line();
    err << name << ": " << e.what() << "\n";
  } catch (const projector::RebuildRefused& e) {
    end_line();
    err << name << ": refused: " << e.what() << "\n";
  } catch (const projector::UnknownProjection& e) {
    end_line();
    err << e.what() << "\n";
  } catch (const std::exception& e) {
    end_line();
    err << name << ": rebuild failed: " << e.what()
        << " (run it again to continue from where it stopped)\n";
  }
  return kExitFailure;
}

}  // namespace

CLI::App* add_rebuild_command(CLI::App& app, RebuildArgs& args) {
  auto* cmd = app.add_subcommand(
      "rebuild",
      "rebuild a projection's read models beside the live ones and switch to them with no "
      "downtime; continues an interrupted rebuild");
  cmd->add_option("projection", args.projections, "projection name (today: read_models)");
  cmd->add_flag("--all", args.all, "every projection");
  cmd->add_flag("--verify", args.verify,
                "before switching, compare the new version with the live one row for row; with "
                "differences, do not switch");
  cmd->add_flag("--force", args.force, "with --verify: switch even when there are differences");
  cmd->add_flag("--cancel", args.cancel, "drop the version being built instead");
  cmd->add_flag("--per-event", args.per_event,
                "replay with the per-event path only (no bulk phase; slower)");
  return cmd;
}

int run_rebuild_command(const RebuildArgs& args, const std::string& database_url,
                        const Console& console) {
  std::vector<std::string> names = args.projections;
  if (args.all) {
    if (!names.empty()) {
      *console.err << "rebuild: give projection names or --all, not both\n";
      return kExitUsage;
    }
    names = projector::projection_names();
  }
  if (names.empty()) {
    *console.err << "rebuild: name a projection (";
    for (const auto& n : projector::projection_names()) *console.err << n << " ";
    *console.err << "or --all)\n";
    return kExitUsage;
  }
  if (args.force && !args.verify) {
    *console.err << "rebuild: --force goes with --verify\n";
    return kExitUsage;
  }
  if (args.cancel && (args.verify || args.force)) {
    *console.err << "rebuild: --cancel takes no other flag\n";
    return kExitUsage;
  }
  g_stop = false;
  auto previous_int = std::signal(SIGINT, on_stop_signal);
  auto previous_term = std::signal(SIGTERM, on_stop_signal);
  int status = 0;
  for (const auto& name : names) {
    try {
      if (rebuild_one(name, args, database_url, console) != 0) status = kExitFailure;
    } catch (const std::exception& e) {
      *console.err << name << ": " << e.what() << "\n";
      status = kExitFailure;
    }
    if (g_stop.load()) break;
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  return status;
}

CLI::App* add_status_command(CLI::App& app, StatusArgs& args) {
  auto* cmd = app.add_subcommand(
      "status", "each projection: live version, position, lag, state (live, rebuilding n%)");
  cmd->add_flag("--json", args.json, "the document GET /api/admin/projections serves");
  return cmd;
}

int run_status_command(const StatusArgs& args, const std::string& database_url,
                       const Console& console) {
  std::vector<infra::ProjectionStatus> all;
  try {
    pqxx::connection c(database_url);
    pqxx::read_transaction tx(c);
    all = infra::projection_status(tx);
  } catch (const std::exception& e) {
    *console.err << "status: " << e.what() << "\n";
    return kExitFailure;
  }
  std::ostream& out = *console.out;
  if (args.json) {
    out << infra::projection_status_json(all) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"PROJECTION", "VERSION", "SOURCE", "POSITION", "LAG", "LAG (S)", "STATE", "LAST ERROR"}};
  for (const auto& p : all) {
    std::string state = p.state;
    if (p.building_version) {
      state = "rebuilding " + fixed(p.rebuild_percent, 0) + "% (v" +
              std::to_string(*p.building_version);
      if (p.rebuild_running) {
        state +=
            ", " + grouped(static_cast<std::int64_t>(p.rebuild_events_per_second)) + " events/s";
        if (p.rebuild_eta_seconds) state += ", ETA " + clock_text(*p.rebuild_eta_seconds);
      } else {
        state += ", not running";
      }
      state += ")";
    }
    rows.push_back({p.name, std::to_string(p.live_version), p.kafka ? "kafka" : "store",
                    grouped(p.position), grouped(p.lag_events), fixed(p.lag_seconds, 1), state,
                    p.last_error.value_or("-")});
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(widths[i] - r[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
  return 0;
}

}  // namespace shop::tools

// Rebuilding a projection with no downtime.
//
// Each version of a projection's tables lives in a schema of its own (rm_v1, rm_v2, ... for
// "read_models"); public holds one view per table onto the live version, and the registry table
// `projections` names the live version and the one being built (infra/pg.h, migration 7). A
// rebuild:
//  1. creates the next version's schema and tables and registers it as building (or, when the
//     registry already names one, continues it from its own checkpoint: a rebuild killed at any
//     point loses at most the transaction it was in);
//  2. replays the store into it from position 0 at bulk speed, in large transactions each with
//     its checkpoint, while the live version keeps serving and projecting;
//  3. catches up to near the head, then switches in one transaction: takes the live projector's
//     lock (the live projector waits), applies the last events to the new version, optionally
//     compares it row for row with the live one brought to the same place (verify), repoints the
//     views and records the new live version. Readers never see a half switch: a query either
//     runs before the transaction commits (on the old version) or waits for it (then reads the
//     new one);
//  4. drops the old version's schema.
// One rebuild of a projection at a time (a session advisory lock): a second one is refused.
//
// A version built from the store cannot know where a Kafka consumer group would continue: a
// rebuild is refused while the live version is projected from Kafka (docs/KAFKA.md).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace shop::projector {

// No projection of that name.
struct UnknownProjection : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The rebuild cannot run now: another one is running, or the live version is projected from
// Kafka. Nothing was changed by this call but the registry's last_error.
struct RebuildRefused : std::runtime_error {
  enum class Reason { running, kafka };
  RebuildRefused(Reason r, const std::string& what) : std::runtime_error(what), reason(r) {}
  Reason reason;
};

// The stop flag was raised: the new version stays registered and the next run continues it.
struct RebuildStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RebuildProgress {
  std::string projection;
  int version = 0;                // the version being built
  std::string phase;              // "replay", "switch", "done"
  std::int64_t position = 0;      // the greatest position applied to the new version
  std::int64_t head = 0;          // the store's greatest position, as last read
  std::int64_t events = 0;        // events applied by this run
  std::int64_t resumed_from = 0;  // the new version's position when this run began
  double events_per_second = 0;   // this run's rate, smoothed over the last seconds
  std::optional<double> eta_seconds;
  double percent = 0;  // position / head
};

struct RebuildOptions {
  // Before switching, compare every table of the new version with the live one, both at the same
  // checkpoint. With differences, the switch is not made (the new version stays, registered, for
  // inspection; a later run continues it) unless `force`.
  bool verify = false;
  bool force = false;
  // Replay at bulk speed first (bulk_build, bulk.h), then with the per-event path; false: the
  // per-event path only.
  bool bulk = true;
  std::int64_t bulk_flush_every = 250000;  // events per bulk transaction
  int bulk_batch_size = 10000;             // events per read of the store in bulk
  int batch_size = 5000;  // events per transaction while replaying with the per-event path
  // The switch's transaction holds the live projector: the replay catches up until at most this
  // many positions are left before taking it.
  std::int64_t switch_within = 2000;
  std::string runner = "shopctl";  // who runs it, for the registry: "shopctl" or "service"
  // Called after every transaction and at the end. May throw: the rebuild stops there (the next
  // run continues from the last committed transaction).
  std::function<void(const RebuildProgress&)> on_progress;
  const std::atomic<bool>* stop = nullptr;  // raised: stop at the next transaction boundary
  // How often the registry's progress (for status pages) is written.
  std::chrono::milliseconds report_interval{1000};
  // How long the switch waits for running reads of the views, per attempt (then it lets them
  // finish and tries again; see rebuild.cpp).
  std::chrono::milliseconds view_lock_timeout{200};
};

// A table's rows that only one of the two versions has, as JSON objects (at most a few).
struct TableDifference {
  std::string table;
  std::int64_t only_live = 0;
  std::int64_t only_new = 0;
  std::vector<std::string> live_samples, new_samples;
};

struct VerifyReport {
  std::int64_t position = 0;  // the checkpoint (max position) both versions were compared at
  std::vector<TableDifference> tables;  // every table compared
  std::int64_t differing_rows() const;
  bool equal() const { return differing_rows() == 0; }
};

struct RebuildResult {
  std::string projection;
  int old_version = 0;
  int new_version = 0;
  bool resumed = false;           // an earlier run had begun this version
  std::int64_t resumed_from = 0;  // its position then
  bool switched = false;          // false: verify found differences and force was not given
  bool old_dropped = false;       // the old version's schema is gone (else dropped later)
  std::int64_t events = 0;        // applied by this run
  std::int64_t position = 0;      // the new version's greatest position at the end
  double seconds = 0;
  double switch_seconds = 0;  // how long readers of the views may have waited
  std::optional<VerifyReport> verify;
};

// The projections that can be rebuilt, by name (today: "read_models").
std::vector<std::string> projection_names();

// Rebuilds `projection` as described above and returns what happened. Throws
// UnknownProjection, RebuildRefused, RebuildStopped, or whatever failed (the database); every
// failure is also recorded as the registry's last_error. Safe to run beside the live projector,
// the query API and commands; killed at any point, the next run continues.
RebuildResult rebuild(const std::string& database_url, const std::string& projection,
                      const RebuildOptions& options);

// Abandons the version being built, if any (drops its schema; the registry says live again).
// Refused (RebuildRefused) while a rebuild is running. Returns whether there was one.
bool cancel_rebuild(const std::string& database_url, const std::string& projection);

// Drops the schemas of versions that are neither live nor being built (left by a run killed
// between its switch and the drop). Returns their names.
std::vector<std::string> drop_old_versions(const std::string& database_url,
                                           const std::string& projection);

// The projector process's side of POST /api/admin/projections/{name}/rebuild: runs every
// rebuild the registry asks for (state requested, or a rebuilding one that a projector process
// was running and that nobody runs now) until `stop`. Failures are logged, recorded in the
// registry and tried again after a pause; refusals and verify differences are not retried.
void serve_rebuild_requests(const std::string& database_url, const std::atomic<bool>& stop,
                            std::chrono::milliseconds poll_interval = std::chrono::seconds(1));
// One look at the registry: runs what it asks for, then returns (for tests).
std::vector<RebuildResult> run_requested_rebuilds(const std::string& database_url,
                                                  const std::atomic<bool>& stop);

// "replay 42% (420,000 of 1,000,000), 61,234 events/s, ETA 0:09" for progress lines and logs.
std::string describe(const RebuildProgress& p);

}  // namespace shop::projector

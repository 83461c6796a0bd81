#include "shop/projector/rebuild.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <pqxx/pqxx>
#include <thread>

#include "shop/infra/event_store.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"
#include "shop/projector/bulk.h"
#include "shop/projector/projector.h"

namespace shop::projector {

namespace {

using Clock = std::chrono::steady_clock;

// Positions left after a bulk pass above which another pass is worth it.
constexpr std::int64_t kBulkAgainAbove = 50000;

// What the rebuild needs to know of a projection.
struct Spec {
  const char* name;
  const char* schema_prefix;  // as in the registry: versions are <prefix><n>
  void (*create_tables)(pqxx::transaction_base&, const std::string& schema);
  const std::vector<std::string>& (*tables)();  // every table, each with a view in public
  std::vector<std::string> bookkeeping;         // tables verify does not compare
  void (*prepare)(pqxx::connection_base&);      // the statements `apply` uses
  void (*apply)(pqxx::transaction_base&, const std::vector<events::RecordedEvent>&);
};

const std::vector<Spec>& specs() {
  static const std::vector<Spec> all = {
      {kCheckpointName,
       "rm_v",
       infra::create_read_model_tables,
       infra::read_model_tables,
       {"rm_checkpoints", "rm_kafka_offsets"},
       prepare_statements,
       apply_batch},
  };
  return all;
}

const Spec& spec_of(const std::string& name) {
  std::string known;
  for (const auto& s : specs()) {
    if (name == s.name) return s;
    known += (known.empty() ? "" : ", ") + std::string(s.name);
  }
  throw UnknownProjection("no projection named '" + name + "' (known: " + known + ")");
}

// A failure, recorded for status pages. $3: nobody is to continue it unasked (a refusal, a
// verification that found differences). A request no version was made for is over.
constexpr const char* kRecordError = R"SQL(
UPDATE public.projections SET last_error = $2,
  runner = CASE WHEN $3 THEN NULL ELSE runner END,
  state = CASE WHEN building_version IS NULL THEN 'live' ELSE state END,
  requested_at = CASE WHEN building_version IS NULL THEN NULL ELSE requested_at END,
  updated_at = now()
 WHERE name = $1)SQL";

// The rebuilds a projector process is to run: asked for over the API, or begun by a projector
// process and not finished (it was stopped or failed).
constexpr const char* kRequested = R"SQL(
SELECT name, coalesce((request->>'verify')::boolean, false),
       coalesce((request->>'force')::boolean, false)
  FROM public.projections
 WHERE state = 'requested' OR (state = 'rebuilding' AND runner = 'service')
 ORDER BY name)SQL";

// Statements of a rebuild's connection. Those without a schema name run against the version
// whose schema is first on the search path (use_schema).
const std::pair<const char*, const char*> kStatements[] = {
    {"rb_try_lock", "SELECT pg_try_advisory_lock($1, hashtext($2))"},
    {"rb_unlock", "SELECT pg_advisory_unlock($1, hashtext($2))"},
    {"rb_projector_lock", "SELECT pg_advisory_xact_lock(2, hashtext($1))"},
    {"rb_registry", R"SQL(
SELECT schema_prefix, live_version, building_version, state
  FROM public.projections WHERE name = $1)SQL"},
    {"rb_registry_lock", R"SQL(
SELECT schema_prefix, live_version, building_version, state
  FROM public.projections WHERE name = $1 FOR UPDATE)SQL"},
    // Every schema of the projection's versions, with its version number.
    {"rb_versions", R"SQL(
SELECT n.nspname, substr(n.nspname, length(p.schema_prefix) + 1)::int
  FROM pg_namespace n JOIN public.projections p ON p.name = $1
 WHERE left(n.nspname, length(p.schema_prefix)) = p.schema_prefix
   AND substr(n.nspname, length(p.schema_prefix) + 1) ~ '^[0-9]{1,9}$'
 ORDER BY 2)SQL"},
    {"rb_search_path", "SELECT set_config('search_path', $1, true)"},
    {"rb_checkpoint", R"SQL(
SELECT last_tx::text, last_position, max_position FROM rm_checkpoints WHERE name = $1)SQL"},
    {"rb_checkpoint_save", R"SQL(
INSERT INTO rm_checkpoints AS c (name, last_tx, last_position, max_position, updated_at)
VALUES ($1, $2::xid8, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, last_position = EXCLUDED.last_position,
  max_position = GREATEST(c.max_position, EXCLUDED.max_position), updated_at = now())SQL"},
    {"rb_head", "SELECT coalesce(max(position), 0) FROM public.events"},
    {"rb_begin", R"SQL(
UPDATE public.projections SET building_version = $2, state = 'rebuilding', runner = $3,
  request = jsonb_build_object('verify', $4::boolean, 'force', $5::boolean),
  started_at = CASE WHEN building_version IS NULL THEN now() ELSE started_at END,
  rebuild_position = $6, rebuild_head = $7, events_per_second = 0, eta_seconds = NULL,
  last_error = NULL, updated_at = now()
 WHERE name = $1)SQL"},
    {"rb_progress", R"SQL(
UPDATE public.projections SET rebuild_position = $3, rebuild_head = $4, events_per_second = $5,
  eta_seconds = $6, updated_at = now()
 WHERE name = $1 AND building_version = $2)SQL"},
    {"rb_switched", R"SQL(
UPDATE public.projections SET live_version = $2, building_version = NULL, state = 'live',
  runner = NULL, request = NULL, requested_at = NULL, last_rebuild_at = now(), last_error = NULL,
  rebuild_position = $3, rebuild_head = $4, events_per_second = $5, eta_seconds = 0,
  updated_at = now()
 WHERE name = $1)SQL"},
    {"rb_cancelled", R"SQL(
UPDATE public.projections SET building_version = NULL, state = 'live', runner = NULL,
  request = NULL, requested_at = NULL, last_error = NULL, rebuild_position = 0, rebuild_head = 0,
  events_per_second = 0, eta_seconds = NULL, updated_at = now()
 WHERE name = $1)SQL"},
};

// A connection of its own: the rebuild lock is held by the session.
struct Session {
  explicit Session(const std::string& url, const Spec& spec) : conn(url) {
    pqxx::nontransaction(conn).exec("SET TIME ZONE 'UTC'");
    spec.prepare(conn);
    for (const auto& [name, sql] : kStatements) conn.prepare(name, sql);
  }
  pqxx::connection conn;
};

// Holds the projection's rebuild lock for its lifetime (refused: RebuildRefused).
class RebuildLock {
 public:
  RebuildLock(Session& s, const Spec& spec) : s_(s), name_(spec.name) {
    pqxx::nontransaction tx(s_.conn);
    if (!tx.exec_prepared("rb_try_lock", infra::kRebuildLockClass, name_)[0][0].as<bool>()) {
      throw RebuildRefused(RebuildRefused::Reason::running,
                           "a rebuild of " + name_ + " is running already");
    }
  }
  ~RebuildLock() {
    try {
      if (s_.conn.is_open())
        pqxx::nontransaction(s_.conn).exec_prepared("rb_unlock", infra::kRebuildLockClass, name_);
    } catch (const std::exception&) {
      // A broken connection has released the lock with the session.
    }
  }
  RebuildLock(const RebuildLock&) = delete;
  RebuildLock& operator=(const RebuildLock&) = delete;

 private:
  Session& s_;
  std::string name_;
};

struct Registry {
  std::string prefix;
  int live = 0;
  std::optional<int> building;
  std::string state;
  std::string schema(int version) const { return prefix + std::to_string(version); }
};

Registry read_registry(pqxx::transaction_base& tx, const Spec& spec, bool for_update) {
  const auto r = tx.exec_prepared(for_update ? "rb_registry_lock" : "rb_registry", spec.name);
  if (r.empty()) {
    throw UnknownProjection(std::string("the projection ") + spec.name +
                            " is not registered (are the migrations applied?)");
  }
  Registry reg;
  reg.prefix = r[0][0].c_str();
  reg.live = r[0][1].as<int>();
  if (!r[0][2].is_null()) reg.building = r[0][2].as<int>();
  reg.state = r[0][3].c_str();
  return reg;
}

// The version's schema first on the search path for the rest of the transaction (then public,
// where the events are).
void use_schema(pqxx::transaction_base& tx, const std::string& schema) {
  tx.exec_prepared("rb_search_path", tx.quote_name(schema) + ", public");
}

// A version's place: its checkpoint in the global order and the greatest position applied.
struct Place {
  infra::GlobalCheckpoint checkpoint;
  std::int64_t max_position = 0;
  bool same_as(const Place& o) const {
    return checkpoint.tx == o.checkpoint.tx && checkpoint.position == o.checkpoint.position;
  }
};

Place load_place(pqxx::transaction_base& tx, const Spec& spec) {
  const auto r = tx.exec_prepared("rb_checkpoint", spec.name);
  Place p;
  if (!r.empty()) {
    p.checkpoint.tx = r[0][0].c_str();
    p.checkpoint.position = r[0][1].as<std::int64_t>();
    p.max_position = r[0][2].as<std::int64_t>();
  }
  return p;
}

// One batch after the checkpoint of the version first on the search path, applied with the
// per-event path, and its new checkpoint, in `tx`. Returns the number of events (0: nothing
// below the reader's horizon is left).
int apply_step(pqxx::transaction_base& tx, const Spec& spec, int limit, Place& place) {
  place = load_place(tx, spec);
  auto batch = infra::read_global(tx, place.checkpoint, limit);
  if (batch.events.empty()) return 0;
  std::int64_t max_position = place.max_position;
  for (const auto& e : batch.events) max_position = std::max(max_position, e.position);
  spec.apply(tx, batch.events);
  tx.exec_prepared("rb_checkpoint_save", spec.name, batch.next.tx, batch.next.position,
                   max_position);
  place.checkpoint = batch.next;
  place.max_position = max_position;
  return static_cast<int>(batch.events.size());
}

std::int64_t head_position(pqxx::transaction_base& tx) {
  return tx.exec_prepared("rb_head")[0][0].as<std::int64_t>();
}

// Drops a schema, waiting at most a few seconds for whoever still reads it (then throws).
void drop_schema(pqxx::connection& conn, const std::string& schema) {
  pqxx::work tx(conn);
  tx.exec("SET LOCAL lock_timeout = '5s'");
  tx.exec("DROP SCHEMA IF EXISTS " + tx.quote_name(schema) + " CASCADE");
  tx.commit();
}

// The versions' schemas that are neither live nor being built. Run under the rebuild lock.
std::vector<std::string> drop_leftovers(Session& s, const Spec& spec) {
  std::vector<std::string> dropped;
  std::vector<std::string> leftovers;
  {
    pqxx::work tx(s.conn);
    const Registry reg = read_registry(tx, spec, false);
    for (const auto& r : tx.exec_prepared("rb_versions", spec.name)) {
      const int v = r[1].as<int>();
      if (v != reg.live && (!reg.building || v != *reg.building)) leftovers.push_back(r[0].c_str());
    }
  }
  for (const auto& schema : leftovers) {
    try {
      drop_schema(s.conn, schema);
      dropped.push_back(schema);
      log::info("dropped {}, an old version of {}", schema, spec.name);
    } catch (const pqxx::sql_error& e) {
      log::warn("could not drop {} (an old version of {}) yet: {}", schema, spec.name, e.what());
    }
  }
  return dropped;
}

// Records a failure in the registry, on a connection of its own (the rebuild's may be broken).
void record_error(const std::string& url, const Spec& spec, const std::string& what, bool give_up) {
  try {
    pqxx::connection c(url);
    c.prepare("rb_error", kRecordError);
    pqxx::work tx(c);
    tx.exec_prepared("rb_error", spec.name, what, give_up);
    tx.commit();
  } catch (const std::exception& e) {
    log::warn("could not record the failure of the rebuild of {}: {}", spec.name, e.what());
  }
}

// Events per second over the last seconds (exponential smoothing of one-second samples).
class Meter {
 public:
  void update(std::int64_t events) {
    latest_ = events;
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - sample_time_).count();
    if (dt < 1.0) return;
    const double sample = static_cast<double>(events - sample_events_) / dt;
    rate_ = rate_ < 0 ? sample : 0.7 * rate_ + 0.3 * sample;
    sample_time_ = now;
    sample_events_ = events;
  }
  // Until a first second has passed: the average so far.
  double rate() const { return rate_ < 0 ? average(latest_) : rate_; }
  double average(std::int64_t events) const {
    const double dt = std::chrono::duration<double>(Clock::now() - start_).count();
    return dt > 0 ? static_cast<double>(events) / dt : 0;
  }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  Clock::time_point start_ = Clock::now();
  Clock::time_point sample_time_ = start_;
  std::int64_t sample_events_ = 0;
  std::int64_t latest_ = 0;
  double rate_ = -1;
};

// The rows of one table that only one version has, compared as JSON objects (every column).
TableDifference compare_table(pqxx::transaction_base& tx, const std::string& table,
                              const std::string& live_schema, const std::string& new_schema) {
  const std::string a = tx.quote_name(live_schema) + "." + tx.quote_name(table);
  const std::string b = tx.quote_name(new_schema) + "." + tx.quote_name(table);
  const auto rows = tx.exec("WITH a AS MATERIALIZED (SELECT to_jsonb(t) AS r FROM " + a +
                            " t),"
                            " b AS MATERIALIZED (SELECT to_jsonb(t) AS r FROM " +
                            b +
                            " t),"
                            " x AS MATERIALIZED (SELECT r FROM a EXCEPT ALL SELECT r FROM b),"
                            " y AS MATERIALIZED (SELECT r FROM b EXCEPT ALL SELECT r FROM a)"
                            " SELECT 'live_count', count(*)::text FROM x"
                            " UNION ALL SELECT 'new_count', count(*)::text FROM y"
                            " UNION ALL (SELECT 'live', r::text FROM x ORDER BY r::text LIMIT 5)"
                            " UNION ALL (SELECT 'new', r::text FROM y ORDER BY r::text LIMIT 5)");
  TableDifference d;
  d.table = table;
  for (const auto& r : rows) {
    const std::string_view kind = r[0].c_str();
    if (kind == "live_count") {
      d.only_live = r[1].as<std::int64_t>();
    } else if (kind == "new_count") {
      d.only_new = r[1].as<std::int64_t>();
    } else if (kind == "live") {
      d.live_samples.emplace_back(r[1].c_str());
    } else {
      d.new_samples.emplace_back(r[1].c_str());
    }
  }
  return d;
}

// Takes every view of the projection for the switch. A view's exclusive lock waits for the reads
// that use it; were the switch to wait indefinitely, a read that already holds one view and
// wants another it holds would deadlock with it. So each attempt waits at most `timeout`, then
// lets go of what it took (a savepoint) and lets the reads finish before trying again.
void lock_views(pqxx::dbtransaction& tx, const Spec& spec, std::chrono::milliseconds timeout) {
  std::string views;
  for (const auto& t : spec.tables()) {
    views += (views.empty() ? "public." : ", public.") + tx.quote_name(t);
  }
  for (int attempt = 1;; ++attempt) {
    try {
      pqxx::subtransaction sub(tx, "lock_views");
      sub.exec("SET LOCAL lock_timeout = " +
               std::to_string(std::max<long long>(timeout.count(), 1)));
      sub.exec("LOCK TABLE " + views + " IN ACCESS EXCLUSIVE MODE");
      sub.exec("SET LOCAL lock_timeout = 0");
      sub.commit();
      return;
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() != "55P03" || attempt >= 100) throw;
      log::info("switch of {}: reads still running, trying again", spec.name);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 * std::min(attempt, 10)));
  }
}

// Points every view of the projection at `schema`. CREATE OR REPLACE keeps each view itself (its
// privileges, whatever depends on it); a version whose columns differ from the old one's (a
// migration changed them) needs the view made anew.
void repoint_views(pqxx::dbtransaction& tx, const Spec& spec, const std::string& schema) {
  for (const auto& t : spec.tables()) {
    const std::string view = "public." + tx.quote_name(t);
    const std::string select =
        " AS SELECT * FROM " + tx.quote_name(schema) + "." + tx.quote_name(t);
    try {
      pqxx::subtransaction sub(tx, "repoint");
      sub.exec("CREATE OR REPLACE VIEW " + view + select);
      sub.commit();
    } catch (const pqxx::sql_error&) {
      tx.exec("DROP VIEW IF EXISTS " + view);
      tx.exec("CREATE VIEW " + view + select);
    }
  }
}

struct Run {
  Run(const Spec& sp, const RebuildOptions& opts, Session& session)
      : spec(sp), o(opts), s(session) {}
  const Spec& spec;
  const RebuildOptions& o;
  Session& s;
  Registry reg;
  int version = 0;
  RebuildResult result;
  Meter meter;
  std::int64_t head = 0;
  Place place;
  Clock::time_point next_report{};

  std::string new_schema() const { return reg.schema(version); }
  std::string live_schema() const { return reg.schema(reg.live); }

  void check_stop() const {
    if (o.stop && o.stop->load()) {
      throw RebuildStopped("stopped; the next rebuild of " + std::string(spec.name) +
                           " continues version " + std::to_string(version));
    }
  }

  RebuildProgress progress(const char* phase) {
    meter.update(result.events);
    RebuildProgress p;
    p.projection = spec.name;
    p.version = version;
    p.phase = phase;
    p.position = place.max_position;
    p.head = std::max(head, place.max_position);
    p.events = result.events;
    p.resumed_from = result.resumed_from;
    p.events_per_second = meter.rate();
    if (p.head > 0) {
      p.percent = 100.0 * static_cast<double>(p.position) / static_cast<double>(p.head);
    }
    if (p.events_per_second > 0) {
      p.eta_seconds = static_cast<double>(p.head - p.position) / p.events_per_second;
    }
    return p;
  }

  void report(const RebuildProgress& p) const {
    if (o.on_progress) o.on_progress(p);
  }

  // The registry's progress, in the transaction of a batch (at most every report_interval).
  void record_progress(pqxx::transaction_base& tx, const RebuildProgress& p, bool now) {
    if (!now && Clock::now() < next_report) return;
    next_report = Clock::now() + o.report_interval;
    std::optional<double> eta = p.eta_seconds;
    tx.exec_prepared("rb_progress", spec.name, version, p.position, p.head, p.events_per_second,
                     eta);
  }

  // Registers the new version (or finds the one an earlier run began) and its tables.
  void begin() {
    pqxx::work tx(s.conn);
    reg = read_registry(tx, spec, true);
    if (infra::projected_from_kafka(tx, live_schema())) throw kafka_refusal();
    head = head_position(tx);
    if (reg.building) {
      version = *reg.building;
      const bool exists =
          !tx.exec_params("SELECT 1 FROM pg_namespace WHERE nspname = $1", new_schema()).empty();
      if (exists) {
        use_schema(tx, new_schema());
        place = load_place(tx, spec);
        result.resumed = true;
        result.resumed_from = place.max_position;
      } else {
        spec.create_tables(tx, new_schema());
      }
    } else {
      version = reg.live + 1;
      for (const auto& r : tx.exec_prepared("rb_versions", spec.name)) {
        version = std::max(version, r[1].as<int>() + 1);
      }
      spec.create_tables(tx, new_schema());
    }
    tx.exec_prepared("rb_begin", spec.name, version, o.runner, o.verify, o.force,
                     place.max_position, head);
    tx.commit();
    reg.building = version;
    result.old_version = reg.live;
    result.new_version = version;
    if (result.resumed) {
      log::info("rebuild of {}: continuing version {} from position {}", spec.name, version,
                result.resumed_from);
    } else {
      log::info("rebuild of {}: building version {} in {} beside the live {}", spec.name, version,
                new_schema(), live_schema());
    }
  }

  RebuildRefused kafka_refusal() const {
    return RebuildRefused(
        RebuildRefused::Reason::kafka,
        "the live version of " + std::string(spec.name) + " (" + live_schema() +
            ") is projected from Kafka: a version built from the store cannot know where the "
            "consumer group would continue. Rebuilding from the store is switching source: see "
            "docs/KAFKA.md, \"Switching source\"");
  }

  // Phase 1: the replay at bulk speed: bulk_build folds the events in memory and writes the rows
  // with COPY, in large transactions each with the version's checkpoint (resumable from it), up
  // to the head as it was when it began. The per-event path continues from there.
  void replay_in_bulk(const std::string& url) {
    if (!o.bulk) return;
    // Commands that came during a pass are folded by the next one while they are many (the
    // per-event path is several times slower), a few passes at most.
    for (int pass = 1; pass <= 4; ++pass) {
      const std::int64_t before = place.max_position;
      std::int64_t folded = 0;
      BulkOptions bulk;
      bulk.flush_every = o.bulk_flush_every;
      bulk.batch_size = o.bulk_batch_size;
      bulk_build(url, new_schema(), bulk, [&](const BulkProgress& b) {
        check_stop();
        result.events += b.events - folded;
        folded = b.events;
        place.max_position = std::max(before, b.position);
        head = std::max(head, b.head_position);
        const auto p = progress("replay");
        if (Clock::now() >= next_report) {
          pqxx::nontransaction tx(s.conn);
          record_progress(tx, p, true);
        }
        report(p);
      });
      pqxx::work tx(s.conn);
      use_schema(tx, new_schema());
      place = load_place(tx, spec);
      head = head_position(tx);
      if (head - place.max_position <= kBulkAgainAbove) return;
    }
  }

  // Phase 2: the per-event path, a batch per transaction, until near the head.
  void replay() {
    for (;;) {
      check_stop();
      pqxx::work tx(s.conn);
      use_schema(tx, new_schema());
      const int n = apply_step(tx, spec, o.batch_size, place);
      head = head_position(tx);
      result.events += n;
      const auto p = progress("replay");
      record_progress(tx, p, false);
      tx.commit();
      report(p);
      if (n == 0 || head - place.max_position <= o.switch_within) return;
    }
  }

  // Phase 3: the switch, in one transaction (see rebuild.h). Returns false when verify found
  // differences and force was not given: nothing was switched.
  bool switch_versions() {
    pqxx::work tx(s.conn);
    // The live projector waits from here to the commit; Kafka members' batches too (they take
    // the lock shared).
    tx.exec_prepared("rb_projector_lock", spec.name);
    const Registry now = read_registry(tx, spec, true);
    if (now.live != reg.live || now.building != reg.building) {
      throw std::runtime_error("the registry of " + std::string(spec.name) +
                               " changed under the rebuild (cancelled?)");
    }
    if (infra::projected_from_kafka(tx, live_schema())) throw kafka_refusal();
    // A transaction id now: the reader's horizon stays below it, so the versions below reach
    // one place, the same for both, however fast commands keep coming.
    tx.exec("SELECT pg_current_xact_id()");
    Place live_place;
    for (int round = 1;; ++round) {
      use_schema(tx, new_schema());
      while (const int n = apply_step(tx, spec, o.batch_size, place)) result.events += n;
      if (!o.verify) break;
      use_schema(tx, live_schema());
      while (apply_step(tx, spec, o.batch_size, live_place) > 0) {
      }
      if (live_place.same_as(place)) break;
      if (round >= 10) {
        throw std::runtime_error("could not bring the live and the new version to one place");
      }
    }
    head = std::max(head, place.max_position);
    if (o.verify) {
      VerifyReport report;
      report.position = place.max_position;
      for (const auto& t : spec.tables()) {
        if (std::find(spec.bookkeeping.begin(), spec.bookkeeping.end(), t) !=
            spec.bookkeeping.end()) {
          continue;
        }
        report.tables.push_back(compare_table(tx, t, live_schema(), new_schema()));
      }
      result.verify = report;
      if (!report.equal() && !o.force) {
        tx.abort();
        return false;
      }
    }
    const auto locked = Clock::now();
    lock_views(tx, spec, o.view_lock_timeout);
    repoint_views(tx, spec, new_schema());
    const auto p = progress("switch");
    tx.exec_prepared("rb_switched", spec.name, version, place.max_position, p.head,
                     meter.average(result.events));
    tx.commit();
    result.switch_seconds = std::chrono::duration<double>(Clock::now() - locked).count();
    return true;
  }
};

std::string grouped(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return v < 0 ? "-" + out : out;
}

std::string difference_summary(const VerifyReport& r) {
  std::string out;
  for (const auto& t : r.tables) {
    if (t.only_live == 0 && t.only_new == 0) continue;
    out += (out.empty() ? "" : ", ") + t.table + " (" + std::to_string(t.only_live) +
           " rows only in the live version, " + std::to_string(t.only_new) + " only in the new)";
  }
  return out;
}

}  // namespace

std::int64_t VerifyReport::differing_rows() const {
  std::int64_t n = 0;
  for (const auto& t : tables) n += t.only_live + t.only_new;
  return n;
}

std::vector<std::string> projection_names() {
  std::vector<std::string> out;
  for (const auto& s : specs()) out.emplace_back(s.name);
  return out;
}

std::string describe(const RebuildProgress& p) {
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", p.percent);
  std::string out = p.phase + " " + pct + " (position " + grouped(p.position) + " of " +
                    grouped(p.head) + "), " +
                    grouped(static_cast<std::int64_t>(p.events_per_second)) + " events/s";
  if (p.eta_seconds) {
    const auto s = static_cast<long long>(*p.eta_seconds + 0.5);
    char eta[32];
    if (s >= 3600) {
      std::snprintf(eta, sizeof eta, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    } else {
      std::snprintf(eta, sizeof eta, "%lld:%02lld", s / 60, s % 60);
    }
    out += std::string(", ETA ") + eta;
  }
  return out;
}

RebuildResult rebuild(const std::string& database_url, const std::string& projection,
                      const RebuildOptions& options) {
  const Spec& spec = spec_of(projection);
  Session s(database_url, spec);
  RebuildLock lock(s, spec);
  Run run(spec, options, s);
  run.result.projection = spec.name;
  try {
    drop_leftovers(s, spec);
    run.begin();
    run.report(run.progress("replay"));
    run.replay_in_bulk(database_url);
    run.replay();
    run.result.switched = run.switch_versions();
  } catch (const RebuildRefused& e) {
    record_error(database_url, spec, e.what(), true);
    throw;
  } catch (const std::exception& e) {
    record_error(database_url, spec, e.what(), false);
    throw;
  }
  run.result.position = run.place.max_position;
  run.result.seconds = run.meter.seconds();
  if (!run.result.switched) {
    const std::string what =
        "verification found " + std::to_string(run.result.verify->differing_rows()) +
        " differing rows at position " + std::to_string(run.result.verify->position) + ": " +
        difference_summary(*run.result.verify) + "; not switched (version " +
        std::to_string(run.version) +
        " stays for inspection: rebuild with --force to switch anyway, or "
        "cancel it)";
    log::warn("rebuild of {}: {}", spec.name, what);
    record_error(database_url, spec, what, true);
    return run.result;
  }
  log::info(
      "rebuild of {}: version {} is live at position {} ({} events in {:.1f} s; views "
      "locked for {:.3f} s)",
      spec.name, run.version, run.result.position, run.result.events, run.result.seconds,
      run.result.switch_seconds);
  auto done = run.progress("done");
  done.percent = 100;
  done.eta_seconds = 0;
  run.report(done);
  try {
    drop_schema(s.conn, run.live_schema());
    run.result.old_dropped = true;
  } catch (const std::exception& e) {
    log::warn(
        "rebuild of {}: could not drop the old version {} yet ({}); the next rebuild "
        "drops it",
        spec.name, run.live_schema(), e.what());
  }
  return run.result;
}

bool cancel_rebuild(const std::string& database_url, const std::string& projection) {
  const Spec& spec = spec_of(projection);
  Session s(database_url, spec);
  RebuildLock lock(s, spec);
  pqxx::work tx(s.conn);
  const Registry reg = read_registry(tx, spec, true);
  tx.exec("SET LOCAL lock_timeout = '5s'");
  if (reg.building)
    tx.exec("DROP SCHEMA IF EXISTS " + tx.quote_name(reg.schema(*reg.building)) + " CASCADE");
  const bool any = reg.building.has_value() || reg.state != "live";
  tx.exec_prepared("rb_cancelled", spec.name);
  tx.commit();
  return any;
}

std::vector<std::string> drop_old_versions(const std::string& database_url,
                                           const std::string& projection) {
  const Spec& spec = spec_of(projection);
  Session s(database_url, spec);
  RebuildLock lock(s, spec);
  return drop_leftovers(s, spec);
}

namespace {

// Runs the rebuilds the registry asks for (read on `poll`, a connection kept between looks).
std::vector<RebuildResult> run_requests(const std::string& database_url, pqxx::connection& poll,
                                        const std::atomic<bool>& stop) {
  struct Request {
    std::string name;
    bool verify, force;
  };
  std::vector<Request> requests;
  {
    pqxx::nontransaction tx(poll);
    for (const auto& r : tx.exec(kRequested)) {
      requests.push_back({r[0].c_str(), r[1].as<bool>(), r[2].as<bool>()});
    }
  }
  std::vector<RebuildResult> out;
  for (const auto& req : requests) {
    if (stop.load()) break;
    RebuildOptions o;
    o.verify = req.verify;
    o.force = req.force;
    o.runner = "service";
    o.stop = &stop;
    auto next_log = Clock::now() + std::chrono::seconds(10);
    o.on_progress = [&](const RebuildProgress& p) {
      if (Clock::now() < next_log) return;
      next_log = Clock::now() + std::chrono::seconds(10);
      log::info("rebuild of {} (version {}): {}", p.projection, p.version, describe(p));
    };
    try {
      out.push_back(rebuild(database_url, req.name, o));
    } catch (const RebuildRefused& e) {
      if (e.reason == RebuildRefused::Reason::running) continue;  // another process runs it
      log::error("rebuild of {} refused: {}", req.name, e.what());
    } catch (const UnknownProjection& e) {
      log::error("rebuild of {}: {}", req.name, e.what());
    }
  }
  return out;
}

}  // namespace

std::vector<RebuildResult> run_requested_rebuilds(const std::string& database_url,
                                                  const std::atomic<bool>& stop) {
  pqxx::connection poll(database_url);
  return run_requests(database_url, poll, stop);
}

void serve_rebuild_requests(const std::string& database_url, const std::atomic<bool>& stop,
                            std::chrono::milliseconds poll_interval) {
  auto pause = [&](std::chrono::milliseconds d) {
    for (auto waited = std::chrono::milliseconds(0); waited < d && !stop.load();
         waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  for (const auto& name : projection_names()) {
    try {
      drop_old_versions(database_url, name);
    } catch (const std::exception&) {
      // Running elsewhere, or the database is away: the rebuilds clean up themselves.
    }
  }
  auto backoff = std::chrono::milliseconds(5000);
  std::unique_ptr<pqxx::connection> poll;
  while (!stop.load()) {
    try {
      if (!poll || !poll->is_open()) poll = std::make_unique<pqxx::connection>(database_url);
      run_requests(database_url, *poll, stop);
      backoff = std::chrono::milliseconds(5000);
      pause(poll_interval);
    } catch (const RebuildStopped&) {
      break;
    } catch (const std::exception& e) {
      poll.reset();
      log::error("rebuild failed, trying again in {} s: {}", backoff.count() / 1000, e.what());
      pause(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(300000));
    }
  }
}

}  // namespace shop::projector

// PostgreSQL plumbing: a connection pool and the schema migrations.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/connection>
#include <pqxx/transaction_base>
#include <string>
#include <vector>

namespace shop::infra {

// A fixed-size pool of connections. A connection found broken is replaced on its next lease.
// `on_connect` runs on every new connection (to prepare statements).
class ConnectionPool {
 public:
  using Setup = std::function<void(pqxx::connection&)>;
  ConnectionPool(std::string url, std::size_t size, Setup on_connect = {});
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  class Lease {
   public:
    Lease(ConnectionPool& pool, std::unique_ptr<pqxx::connection> c);
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() { return *conn_; }
    pqxx::connection* operator->() { return conn_.get(); }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
  };

  Lease acquire();
  const std::string& url() const { return url_; }

 private:
  std::unique_ptr<pqxx::connection> connect();
  void give_back(std::unique_ptr<pqxx::connection> c);

  std::string url_;
  Setup on_connect_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::size_t outstanding_ = 0;
  std::size_t size_;
};

// Applies every migration not yet applied (event store, write-side lookups, read models).
// Safe to run from several processes at once: they serialise on an advisory lock.
void migrate(const std::string& database_url);

// Waits until the database accepts connections or the timeout passes (then throws).
void wait_for_database(const std::string& database_url, int timeout_seconds);

// --- versioned read models -----------------------------------------------------------------------
//
// A projection's tables live in a schema of their own per version (<prefix><version>: rm_v1,
// rm_v2, ... for "read_models"), and public holds one view per table onto the live version, so
// readers keep saying rm_products. The registry table `projections` (migration 7) names each
// projection's live version and the version being built, if any. Every version schema holds the
// projection's checkpoint table rm_checkpoints, with one row named after the projection.

// The projection "read_models": rm_users, rm_categories, rm_products, rm_cart_items, rm_orders,
// rm_payments, rm_sessions, and its bookkeeping rm_checkpoints and rm_kafka_offsets.
inline constexpr const char* kReadModelsProjection = "read_models";
// Its tables, the bookkeeping ones last.
const std::vector<std::string>& read_model_tables();

// Creates `schema` (unless it exists) and in it every table of the read models, empty, with the
// columns, keys and indexes they have after every migration: a new version is built there.
void create_read_model_tables(pqxx::transaction_base& tx, const std::string& schema);

// A projection's rebuild holds the session advisory lock (kRebuildLockClass, hashtext(name)):
// one rebuild per projection at a time, and status pages see whether one runs. (Other classes:
// 1 streams, 2 a projection's projector, 3 the relay, 4 read-model rows, 5 Kafka progress.)
inline constexpr int kRebuildLockClass = 6;

// Whether the version in `schema` is projected from Kafka (its rm_kafka_offsets has rows): such
// a version keeps its places as Kafka offsets, which a version built from the store cannot know.
bool projected_from_kafka(pqxx::transaction_base& tx, const std::string& schema);

// A projection as the registry and its live version's checkpoint describe it (status pages).
struct ProjectionStatus {
  std::string name;
  int live_version = 0;
  std::string live_schema;
  // live: serving and projecting; requested: a rebuild was asked for and no process has taken it
  // up yet; rebuilding: a new version exists beside the live one (being built, or interrupted:
  // see rebuild_running and last_error).
  std::string state;
  std::int64_t position = 0;    // the live version's max_position (0 before its first batch)
  std::int64_t lag_events = 0;  // events in the store not applied to the live version yet
  double lag_seconds = 0;       // age of the oldest of them (0 when none)
  bool kafka = false;           // the live version is projected from Kafka
  std::optional<int> building_version;
  bool rebuild_running = false;       // a process is building it now
  std::int64_t rebuild_position = 0;  // how far the new version is (max position applied)
  std::int64_t rebuild_head = 0;      // the store's head as last seen by the rebuild
  double rebuild_percent = 0;
  double rebuild_events_per_second = 0;
  std::optional<double> rebuild_eta_seconds;
  std::optional<std::string> requested_at, rebuild_started_at, last_rebuild_at;  // RFC 3339 UTC
  std::optional<std::string> last_error;
  std::string updated_at;
};

// Every registered projection, by name.
std::vector<ProjectionStatus> projection_status(pqxx::transaction_base& tx);
// The same as JSON: {"items": [...]} (the API's and shopctl status --json's one format), or
// one of them.
std::string projection_status_json(const std::vector<ProjectionStatus>& projections);
std::string projection_status_json(const ProjectionStatus& projection);

enum class RebuildRequest {
  accepted,  // recorded: a projector process takes it up
  unknown,   // no projection of that name
  running,   // a rebuild is requested or under way already
  kafka,     // the live version is projected from Kafka: a rebuild from the store is refused
};
// Records a request to rebuild `name` (taken up by a projector process; see
// projector/include/shop/projector/rebuild.h). `verify` and `force` as in the rebuild's options.
RebuildRequest request_rebuild(pqxx::transaction_base& tx, const std::string& name, bool verify,
                               bool force);

}  // namespace shop::infra

// The read-model database as the query API uses it: pooled connections, statements prepared on
// each connection the first time they run, the projector's checkpoint, and outages turned into
// 503 unavailable instead of crashes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shop/infra/http.h"
#include "shop/infra/pg.h"
#include "shop/query/projection_state.h"

#include <pqxx/except>
#include <pqxx/prepared_statement>
#include <pqxx/result>
#include <pqxx/transaction_base>

namespace shop::query {

// A named SQL statement; the name is its prepared-statement name on every connection.
struct Statement {
  std::string name;
  std::string sql;
};

// Runs `statement` with text parameters, preparing it on this connection first if needed.
pqxx::result run_statement(pqxx::transaction_base& tx, const Statement& statement,
                           const std::vector<std::string>& params);

// SQL text of a timestamptz column as RFC 3339 UTC with microseconds.
std::string utc_text(const std::string& column);

// The error a client sees while the database is unreachable.
http::Error unavailable(const std::string& why);
// True for SQL errors that say "the database cannot serve now" rather than "this query is wrong":
// connection failures, shutdowns, timeouts, exhausted resources, tables not created yet.
bool is_unavailability(const pqxx::sql_error& e);

class ReadDb {
 public:
  ReadDb(std::string url, std::size_t pool_size);

  // Runs fn(connection) on a leased connection and returns its result. When the connection
  // turns out broken (the server restarted) fn runs once more on a fresh one; when the database
  // cannot serve, throws 503 unavailable.
  template <class F>
  auto run(F&& fn) -> decltype(fn(std::declval<pqxx::connection&>())) {
    for (int attempt = 1;; ++attempt) {
      try {
        auto lease = pool_.acquire();
        return fn(*lease);
      } catch (const pqxx::broken_connection& e) {
        if (attempt < 2) continue;
        throw unavailable(e.what());
      } catch (const pqxx::sql_error& e) {
        if (is_unavailability(e)) throw unavailable(e.what());
        throw;
      }
    }
  }

  // The projector's checkpoint (exists = false before its first one).
  Checkpoint read_checkpoint();

  struct Projection {
    bool projected = false;
    Checkpoint checkpoint;
  };
  // Whether the event at `position` is in the read models: the event was applied (it comes at or
  // before the checkpoint in the projector's (transaction, position) order), or there is no such
  // event (a rolled-back append leaves a gap) and the projector has gone past the position.
  Projection check_projected(std::int64_t position);

 private:
  infra::ConnectionPool pool_;
};

}  // namespace shop::query

#include "read_db.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <pqxx/pqxx>

#include "shop/infra/log.h"

namespace shop::query {

namespace {

// The projector's one checkpoint row, with the live version it belongs to (read in one
// statement: a rebuild switches the views and the registry in one transaction).
const Statement kReadCheckpoint{"q_checkpoint", R"SQL(
SELECT c.last_tx::text, c.last_position, c.max_position, p.live_version
  FROM projections p
  LEFT JOIN rm_checkpoints c ON c.name = p.name
 WHERE p.name = 'read_models')SQL"};

// The checkpoint and whether event $1 is covered by it (see ReadDb::check_projected).
const Statement kCheckProjected{"q_check_projected", R"SQL(
SELECT c.last_tx::text, c.last_position, c.max_position, p.live_version,
       CASE WHEN e.position IS NULL THEN $1::bigint <= c.max_position
            ELSE (e.tx_id, e.position) <= (c.last_tx, c.last_position) END
  FROM projections p
  JOIN rm_checkpoints c ON c.name = p.name
  LEFT JOIN events e ON e.position = $1::bigint
 WHERE p.name = 'read_models')SQL"};

Checkpoint checkpoint_from_row(const pqxx::row& row) {
  Checkpoint c;
  c.version = row[3].as<int>();
  if (row[0].is_null()) return c;
  c.exists = true;
  const std::string_view tx(row[0].c_str(), row[0].size());
  std::from_chars(tx.data(), tx.data() + tx.size(), c.tx);
  c.position = row[1].as<std::int64_t>();
  c.max_position = row[2].as<std::int64_t>();
  return c;
}

void setup_connection(pqxx::connection& c) {
  // websearch_to_tsquery() notices ("no lexemes") would otherwise be printed for every query.
  c.set_variable("client_min_messages", "warning");
  // A read that takes this long is a sick database; answer 503 rather than hold a thread.
  c.set_variable("statement_timeout", "10000");
}

}  // namespace

pqxx::result run_statement(pqxx::transaction_base& tx, const Statement& statement,
                           const std::vector<std::string>& params) {
  tx.conn().prepare(statement.name, statement.sql);  // a no-op once defined on this connection
  return tx.exec_prepared(statement.name, pqxx::prepare::make_dynamic_params(params));
}

std::string utc_text(const std::string& column) {
  return "to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

http::Error unavailable(const std::string& why) {
  // At most one line a second: during an outage every request ends up here.
  static std::atomic<std::int64_t> last_logged{0};
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t before = last_logged.load(std::memory_order_relaxed);
  if (now != before && last_logged.compare_exchange_strong(before, now)) {
    log::warn("database unavailable: {}", why);
  }
  http::Error e(503, "unavailable", "the database is unavailable, try again shortly");
  e.headers.emplace_back("Retry-After", "1");
  return e;
}

bool is_unavailability(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  if (state.size() != 5) return false;
  const std::string_view cls = std::string_view(state).substr(0, 2);
  return cls == "08"          // connection exception
         || cls == "53"       // insufficient resources
         || cls == "57"       // operator intervention: shutdown, statement timeout
         || cls == "58"       // system error
         || state == "42P01"  // undefined table: the schema is not migrated yet
         || state == "40001" || state == "40P01";  // serialization failure, deadlock
}

ReadDb::ReadDb(std::string url, std::size_t pool_size)
    : pool_(std::move(url), pool_size, setup_connection) {}

Checkpoint ReadDb::read_checkpoint() {
  return run([](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto rows = run_statement(tx, kReadCheckpoint, {});
    return rows.empty() ? Checkpoint{} : checkpoint_from_row(rows[0]);
  });
}

ReadDb::Projection ReadDb::check_projected(std::int64_t position) {
  return run([&](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    auto rows = run_statement(tx, kCheckProjected, {std::to_string(position)});
    Projection out;
    if (rows.empty()) return out;
    out.checkpoint = checkpoint_from_row(rows[0]);
    out.projected = rows[0][4].as<bool>();
    return out;
  });
}

}  // namespace shop::query

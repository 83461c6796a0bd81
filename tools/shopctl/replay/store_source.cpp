#include "replay/store_source.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "replay/copy_decoder.h"

namespace shop::replay {

namespace {

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;
struct ResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultCloser>;
struct CopyBuffer {
  void operator()(char* p) const { PQfreemem(p); }
};

std::string trimmed_error(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Conn connect(const std::string& url) {
  // Like the services' pool: an unreachable host fails after a few seconds instead of hanging
  // (unless the URL or the environment says otherwise).
  ::setenv("PGCONNECT_TIMEOUT", "5", 0);
  // The URL may be a URI or key=value pairs (expand_dbname); the application name shows the
  // replay in pg_stat_activity unless the URL names another.
  const char* keys[] = {"dbname", "fallback_application_name", nullptr};
  const char* values[] = {url.c_str(), "shopctl replay", nullptr};
  Conn c(PQconnectdbParams(keys, values, 1));
  if (!c) throw std::runtime_error("cannot connect to the database: out of memory");
  if (PQstatus(c.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to the database: " +
                             trimmed_error(PQerrorMessage(c.get())));
  }
  return c;
}

Result exec(PGconn* c, const std::string& sql, ExecStatusType expected) {
  Result r(PQexec(c, sql.c_str()));
  if (!r || PQresultStatus(r.get()) != expected) {
    throw std::runtime_error("database: " + trimmed_error(PQerrorMessage(c)));
  }
  return r;
}

std::string literal(PGconn* c, const std::string& text) {
  char* quoted = PQescapeLiteral(c, text.data(), text.size());
  if (!quoted) throw std::runtime_error("database: " + trimmed_error(PQerrorMessage(c)));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

std::string text_array(PGconn* c, const std::vector<std::string>& values) {
  std::string out = "ARRAY[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += literal(c, values[i]);
  }
  return out + "]::text[]";
}

// The WHERE clause: the horizon first, then every filter. Values are literals because COPY takes
// no parameters; strings go through PQescapeLiteral, the rest are numbers we formatted.
std::string where_clause(PGconn* c, const std::string& horizon, const Filter& f) {
  std::string w = " WHERE tx_id < '" + horizon + "'::xid8";
  if (f.from_position) w += " AND position >= " + std::to_string(*f.from_position);
  if (f.to_position) w += " AND position <= " + std::to_string(*f.to_position);
  if (f.since_micros) w += " AND occurred_at >= '" + format_timestamp(*f.since_micros) + "'";
  if (f.until_micros) w += " AND occurred_at < '" + format_timestamp(*f.until_micros) + "'";
  if (!f.streams.empty()) w += " AND stream_id = ANY(" + text_array(c, f.streams) + ")";
  // The category is the part of the stream id before its first '-' (events::category_of).
  if (!f.categories.empty()) {
    w += " AND split_part(stream_id, '-', 1) = ANY(" + text_array(c, f.categories) + ")";
  }
  if (!f.types.empty()) w += " AND type = ANY(" + text_array(c, f.types) + ")";
  return w;
}

}  // namespace

ReplayStats replay_from_store(const std::string& database_url, const Filter& filter, Format format,
                              Sink& sink, ProgressLine* progress) {
  Conn conn = connect(database_url);
  PGconn* c = conn.get();
  ReplayStats stats;

  // Statement 1: the horizon. Statement 2 (the COPY) runs with a newer snapshot, so it sees every
  // event of every transaction below the horizon (both run in autocommit: READ COMMITTED or
  // stricter, each statement takes its own snapshot).
  {
    Result r = exec(c, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", PGRES_TUPLES_OK);
    stats.horizon = PQgetvalue(r.get(), 0, 0);
    if (stats.horizon.empty() ||
        stats.horizon.find_first_not_of("0123456789") != std::string::npos) {
      throw std::runtime_error("database: unexpected horizon '" + stats.horizon + "'");
    }
  }
  const std::string where = where_clause(c, stats.horizon, filter);

  if (progress && progress->enabled()) {
    // The position range for the estimate of the time left. Only the horizon and the position
    // bounds, which the primary key answers at once from both ends; a selective filter could
    // make min() and max() walk the whole index.
    Filter bounds;
    bounds.from_position = filter.from_position;
    bounds.to_position = filter.to_position;
    Result r = exec(c,
                    "SELECT coalesce(min(position), 0), coalesce(max(position), 0) FROM events" +
                        where_clause(c, stats.horizon, bounds),
                    PGRES_TUPLES_OK);
    progress->set_range(std::atoll(PQgetvalue(r.get(), 0, 0)),
                        std::atoll(PQgetvalue(r.get(), 0, 1)));
  }

  sink.write(preamble(format));
  exec(c,
       "COPY (SELECT position, stream_id, stream_version, type, schema_version, occurred_at, "
       "event_id, correlation_id, causation_id, actor, data FROM events" +
           where + " ORDER BY position) TO STDOUT (FORMAT binary)",
       PGRES_COPY_OUT);

  CopyDecoder decoder(format, sink, progress);
  for (;;) {
    char* raw = nullptr;
    const int n = PQgetCopyData(c, &raw, 0);
    if (n == -1) break;  // the COPY is over; its result says how it ended
    if (n < 0) throw std::runtime_error("database: " + trimmed_error(PQerrorMessage(c)));
    std::unique_ptr<char, CopyBuffer> buffer(raw);
    decoder.feed(raw, static_cast<std::size_t>(n));
  }
  Result end(PQgetResult(c));
  if (!end || PQresultStatus(end.get()) != PGRES_COMMAND_OK) {
    throw std::runtime_error("database: " + trimmed_error(PQerrorMessage(c)));
  }
  while (Result more{PQgetResult(c)}) {
  }
  decoder.finish();
  stats.events = decoder.events();
  return stats;
}

}  // namespace shop::replay

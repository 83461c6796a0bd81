// The query API: the shop's read side over HTTP. It serves the read-model tables that the
// projector keeps (rm_*): the catalogue to everyone, carts, orders and profiles to their owners,
// every order to staff. A client that has just written can ask to read its own write
// (X-Min-Position); every response says how far the read models are (X-Position).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "shop/events/types.h"
#include "shop/infra/config.h"
#include "shop/infra/http.h"

namespace shop::query {

struct Options {
  std::string database_url;
  std::string jwt_secret;  // at least 32 characters; tokens are issued by "shop"
  std::string currency = "USD";
  std::string host = "127.0.0.1";
  unsigned short port = 8081;
  // Handlers block on the database (and on read-your-writes waits, at most the timeout), so more
  // threads than cores; but on a small machine every extra runnable thread adds to the latency
  // of the cached catalog reads (p99 at 32 connections on 2 cores: 16 threads 13 ms, 8 threads
  // 6 ms, 4 threads 3 ms; docs/PERFORMANCE.md).
  int threads = 8;
  int pool_size = 0;  // database connections; 0: one per server thread
  std::string cors_origin = "*";
  // How long a request with X-Min-Position may wait for the projector, and how often it looks.
  std::chrono::milliseconds read_your_writes_timeout{3000};
  std::chrono::milliseconds read_your_writes_poll{2};
  // How stale the known projector checkpoint (and so the response cache) may get.
  std::chrono::milliseconds checkpoint_refresh{2};
  std::size_t cache_entries = 4096;
  // How old the list of revoked sessions (rm_sessions) may get before a request reads it again:
  // a logout reaches this API within the projector's lag plus this.
  std::chrono::milliseconds revocation_refresh{150};

  // DATABASE_URL, JWT_SECRET (required), QUERY_API_HOST, QUERY_API_PORT, QUERY_API_THREADS,
  // DB_POOL_SIZE, STORE_CURRENCY, CORS_ORIGIN, READ_YOUR_WRITES_TIMEOUT_MS,
  // REVOCATION_REFRESH_MS.
  // Throws std::runtime_error for a missing or invalid value.
  static Options from_config(const infra::Config& config);
  // Throws std::invalid_argument when a value is out of range.
  void validate() const;
};

class QueryApp {
 public:
  QueryApp(Options options, const Clock& clock);
  QueryApp(const infra::Config& config, const Clock& clock);
  ~QueryApp();
  QueryApp(const QueryApp&) = delete;
  QueryApp& operator=(const QueryApp&) = delete;

  // Answers one request (the router inside). Throws http::Error for anything the client should
  // see; http::dispatch (or the server) turns it into JSON. Parses the target when the caller
  // has not (req.path empty).
  http::Response handle(http::Request& req);

  const Options& options() const;
  http::ServerOptions server_options() const;
  // A server bound to options().host:port that calls handle(); run() it. Keep the app alive
  // while the server runs.
  std::unique_ptr<http::Server> make_server();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shop::query

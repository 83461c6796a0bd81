// PostgreSQL plumbing: a connection pool and the schema migrations.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

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

}  // namespace shop::infra

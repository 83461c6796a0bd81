#include "shop/infra/revocation.h"

#include <pqxx/pqxx>

#include "shop/infra/http.h"
#include "shop/infra/log.h"
#include "shop/infra/pg.h"

namespace shop::infra {

RevokedSessionCache::RevokedSessionCache(std::string database_url, const Clock& clock,
                                         Options options)
    : pool_(std::make_unique<ConnectionPool>(std::move(database_url), 1)),
      clock_(clock),
      options_(options),
      revoked_(std::make_shared<const Map>()) {}

RevokedSessionCache::~RevokedSessionCache() = default;

void RevokedSessionCache::refresh() const {
  std::lock_guard one_reader(refresh_mutex_);
  const auto started = std::chrono::steady_clock::now();
  auto fresh = std::make_shared<Map>();
  {
    auto lease = pool_->acquire();
    pqxx::read_transaction tx(*lease);
    for (const auto& row : tx.exec("SELECT id::text, to_char(expires_at AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM rm_sessions "
                                   "WHERE revoked_at IS NOT NULL AND expires_at > now()")) {
      auto expiry = parse_time(row[1].c_str());
      fresh->emplace(row[0].c_str(), expiry.value_or(Timestamp::max()));
    }
  }
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  for (auto it = local_.begin(); it != local_.end();) {
    // A local entry stays until the table has it (or it no longer matters).
    if (fresh->count(it->first) || it->second <= now) {
      it = local_.erase(it);
    } else {
      ++it;
    }
  }
  revoked_ = std::move(fresh);
  read_at_ = started;
  ever_read_ = true;
}

void RevokedSessionCache::refresh_if_due() const {
  const auto now = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point read_at;
  bool ever_read = false;
  {
    std::lock_guard lock(mutex_);
    read_at = read_at_;
    ever_read = ever_read_;
  }
  if (ever_read && now - read_at < options_.max_age) return;
  // Someone else is reading: their copy will do unless ours is too old to use at all.
  std::unique_lock reader(refresh_mutex_, std::try_to_lock);
  if (!reader.owns_lock() && ever_read && now - read_at < options_.max_stale) return;
  if (reader.owns_lock()) reader.unlock();
  try {
    refresh();
  } catch (const std::exception& e) {
    log::warn("revoked sessions could not be read: {}", e.what());
    std::lock_guard lock(mutex_);
    if (!ever_read_ || std::chrono::steady_clock::now() - read_at_ >= options_.max_stale) {
      throw http::Error(503, "unavailable", "sessions cannot be checked right now; try again");
    }
  }
}

bool RevokedSessionCache::is_revoked(std::string_view session_id) const {
  refresh_if_due();
  const std::string id(session_id);
  std::lock_guard lock(mutex_);
  return revoked_->count(id) > 0 || local_.count(id) > 0;
}

void RevokedSessionCache::add(const std::string& session_id, const std::string& expires_at) {
  const auto expiry = parse_time(expires_at).value_or(Timestamp::max());
  std::lock_guard lock(mutex_);
  local_[session_id] = expiry;
}

}  // namespace shop::infra

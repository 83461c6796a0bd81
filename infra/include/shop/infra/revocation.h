// Which sessions (refresh-token families) are revoked: what the Authenticator asks about every
// access token, so that a logged-out session's access tokens stop working before they expire.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "shop/events/types.h"

namespace shop::infra {

class ConnectionPool;

class RevokedSessions {
 public:
  virtual ~RevokedSessions() = default;
  // Whether the session is revoked. Throws http::Error 503 when it cannot tell (the list is too
  // old and cannot be read).
  virtual bool is_revoked(std::string_view session_id) const = 0;
};

// The revoked sessions of the read model rm_sessions that can still matter (those whose refresh
// token has not expired: every access token of a session expires before its refresh token), held
// in memory and read again when a request finds the copy older than `max_age` (at most one read
// at a time; the others use the copy they find). A revocation thus takes effect in every process
// within the projector's lag plus `max_age`. When the table cannot be read, the copy keeps being
// used for up to `max_stale`; after that every check answers 503 instead of guessing.
class RevokedSessionCache final : public RevokedSessions {
 public:
  struct Options {
    std::chrono::milliseconds max_age{150};
    std::chrono::milliseconds max_stale{10000};
  };
  RevokedSessionCache(std::string database_url, const Clock& clock, Options options);
  RevokedSessionCache(std::string database_url, const Clock& clock)
      : RevokedSessionCache(std::move(database_url), clock, Options{}) {}
  ~RevokedSessionCache() override;

  bool is_revoked(std::string_view session_id) const override;
  // A revocation this process has just made: effective here at once, without waiting for the
  // projector. `expires_at` is the session's refresh-token expiry (RFC 3339).
  void add(const std::string& session_id, const std::string& expires_at);
  // Reads the table now. Throws on a database error.
  void refresh() const;

 private:
  using Map = std::unordered_map<std::string, Timestamp>;  // session id -> refresh expiry
  void refresh_if_due() const;

  std::unique_ptr<ConnectionPool> pool_;
  const Clock& clock_;
  Options options_;
  mutable std::mutex mutex_;          // guards revoked_, local_, read_at_
  mutable std::mutex refresh_mutex_;  // one read of the table at a time
  mutable std::shared_ptr<const Map> revoked_;
  mutable Map local_;  // add(): until the table shows them
  mutable std::chrono::steady_clock::time_point read_at_{};
  mutable bool ever_read_ = false;
};

}  // namespace shop::infra

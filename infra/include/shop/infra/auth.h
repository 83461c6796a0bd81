// Who is calling: bearer access tokens turned into a Principal, shared by both APIs.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shop/events/types.h"
#include "shop/infra/crypto.h"
#include "shop/infra/http.h"
#include "shop/infra/revocation.h"

namespace shop::infra {

struct Principal {
  std::string user_id;
  std::vector<std::string> roles;
  std::string session_id;  // the session (refresh-token family) the access token belongs to
  bool has_role(std::string_view role) const;
};

class Authenticator {
 public:
  // `revoked`: the sessions whose access tokens are refused although not expired; none: no
  // session is ever revoked (tests of other things).
  Authenticator(const JwtCodec& jwt, const Clock& clock, const RevokedSessions* revoked = nullptr)
      : jwt_(jwt), clock_(clock), revoked_(revoked) {}
  // The caller of a request with a valid access token of a session that is not revoked; throws
  // http::Error 401 otherwise.
  Principal require(const http::Request& req) const;
  // Nullopt when there is no Authorization header; 401 when there is one and it is bad.
  std::optional<Principal> optional(const http::Request& req) const;
  // Throws http::Error 403 unless the principal has one of the roles.
  static void require_role(const Principal& p, std::initializer_list<std::string_view> roles);

 private:
  const JwtCodec& jwt_;
  const Clock& clock_;
  const RevokedSessions* revoked_;
};

}  // namespace shop::infra

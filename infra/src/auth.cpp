#include "shop/infra/auth.h"

#include <algorithm>

namespace shop::infra {

bool Principal::has_role(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

std::optional<Principal> Authenticator::optional(const http::Request& req) const {
  auto header = req.header("Authorization");
  if (!header) return std::nullopt;
  constexpr std::string_view kBearer = "Bearer ";
  if (header->size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header->begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
      })) {
    throw http::Error(401, "invalid_token", "Authorization must be 'Bearer <access token>'");
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       clock_.now().time_since_epoch())
                       .count();
  auto claims = jwt_.verify(header->substr(kBearer.size()), now);
  if (!claims || claims->type != "access" || !is_uuid(claims->user_id) ||
      !is_uuid(claims->session_id)) {
    throw http::Error(401, "invalid_token", "the access token is invalid or has expired");
  }
  if (revoked_ != nullptr && revoked_->is_revoked(claims->session_id)) {
    throw http::Error(401, "invalid_token", "the session of this access token has ended");
  }
  return Principal{claims->user_id, claims->roles, claims->session_id};
}

Principal Authenticator::require(const http::Request& req) const {
  auto p = optional(req);
  if (!p) {
    http::Error e(401, "unauthenticated", "sign in first: send 'Authorization: Bearer <token>'");
    e.headers.emplace_back("WWW-Authenticate", "Bearer");
    throw e;
  }
  return *p;
}

void Authenticator::require_role(const Principal& p,
                                 std::initializer_list<std::string_view> roles) {
  for (auto r : roles) {
    if (p.has_role(r)) return;
  }
  throw http::Error(403, "forbidden", "your role does not allow this");
}

}  // namespace shop::infra

#include <map>

#include "shop/command/http_api.h"

namespace shop::command {

http::Error to_http_error(const domain::DomainError& e) {
  static const std::map<std::string, int, std::less<>> kStatus = {
      {"not_found", 404},
      {"invalid_credentials", 401},
      {"invalid_token", 401},
      {"refresh_token_reused", 401},
      {"version_mismatch", 412},
      {"already_exists", 409},
      {"wrong_password", 403},
      {"email_taken", 409},
      {"phone_taken", 409},
      {"cannot_remove_own_admin", 409},
      {"sku_taken", 409},
      {"insufficient_stock", 409},
      {"cart_empty", 409},
      {"product_unavailable", 409},
      {"invalid_order_status", 409},
      {"concurrency_conflict", 409},
      {"invalid_quantity", 400},
      {"invalid_value", 400},
      {"weak_password", 400},
  };
  auto it = kStatus.find(e.code);
  const int status = it == kStatus.end() ? 400 : it->second;
  const std::string code = e.code == "version_mismatch" ? "precondition_failed" : e.code;
  return http::Error(status, code, e.message, e.details);
}

}  // namespace shop::command

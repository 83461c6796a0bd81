// Reading what a client sent: query parameters and headers, checked before anything reaches the
// database. Every bad value is a 400 invalid_parameter naming the parameter. An empty value
// counts as absent (forms send "?category_id=&q=").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shop/events/types.h"
#include "shop/infra/http.h"

namespace shop::query {

http::Error invalid_parameter(const std::string& name, const std::string& message);

// The value of a query parameter, nullopt when missing or empty. Rejects text that is not UTF-8.
std::optional<std::string> text_param(const http::Request& req, const std::string& name,
                                      std::size_t max_bytes = 256);
// 1..max_limit, default when absent.
int limit_param(const http::Request& req, int default_limit = 20, int max_limit = 100);
// A UUID, returned in lower case.
std::optional<std::string> uuid_param(const http::Request& req, const std::string& name);
// A decimal amount ("12.5", "1299.99") in minor units of a currency with `exponent` decimals.
std::optional<Minor> money_param(const http::Request& req, const std::string& name,
                                 int exponent);
// "true" or "false".
std::optional<bool> bool_param(const http::Request& req, const std::string& name);

// X-Min-Position: a non-negative integer, nullopt when the header is absent.
std::optional<std::int64_t> min_position_header(const http::Request& req);

bool is_utf8(std::string_view text);
std::string to_lower(std::string_view text);
// Escapes LIKE wildcards (%, _ and the escape character \) so the text matches itself.
std::string escape_like(std::string_view text);
// A signed 64-bit integer in plain decimal, nothing else.
std::optional<std::int64_t> parse_int64(std::string_view text);

}  // namespace shop::query

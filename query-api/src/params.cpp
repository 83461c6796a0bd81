#include "params.h"

#include <charconv>

namespace shop::query {

http::Error invalid_parameter(const std::string& name, const std::string& message) {
  return http::Error(400, "invalid_parameter", name + ": " + message, {name});
}

bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    int extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(extra) >= text.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += static_cast<std::size_t>(extra) + 1;
  }
  return true;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string escape_like(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::optional<std::int64_t> parse_int64(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::string> text_param(const http::Request& req, const std::string& name,
                                      std::size_t max_bytes) {
  auto it = req.query.find(name);
  if (it == req.query.end() || it->second.empty()) return std::nullopt;
  if (it->second.size() > max_bytes) {
    throw invalid_parameter(name, "at most " + std::to_string(max_bytes) + " bytes");
  }
  if (!is_utf8(it->second)) throw invalid_parameter(name, "must be UTF-8 text");
  return it->second;
}

int limit_param(const http::Request& req, int default_limit, int max_limit) {
  auto text = text_param(req, "limit", 16);
  if (!text) return default_limit;
  auto n = parse_int64(*text);
  if (!n || *n < 1 || *n > max_limit) {
    throw invalid_parameter("limit", "must be an integer from 1 to " + std::to_string(max_limit));
  }
  return static_cast<int>(*n);
}

std::optional<std::string> uuid_param(const http::Request& req, const std::string& name) {
  auto text = text_param(req, name, 64);
  if (!text) return std::nullopt;
  if (!is_uuid(*text)) throw invalid_parameter(name, "must be a UUID");
  return to_lower(*text);
}

std::optional<Minor> money_param(const http::Request& req, const std::string& name,
                                 int exponent) {
  auto text = text_param(req, name, 32);
  if (!text) return std::nullopt;
  auto amount = parse_money(*text, exponent);
  if (!amount) {
    throw invalid_parameter(name, "must be a non-negative decimal amount with at most " +
                                      std::to_string(exponent) + " decimals");
  }
  return amount;
}

std::optional<bool> bool_param(const http::Request& req, const std::string& name) {
  auto text = text_param(req, name, 16);
  if (!text) return std::nullopt;
  if (*text == "true") return true;
  if (*text == "false") return false;
  throw invalid_parameter(name, "must be true or false");
}

std::optional<std::int64_t> min_position_header(const http::Request& req) {
  auto header = req.header("X-Min-Position");
  if (!header) return std::nullopt;
  std::string_view text = *header;
  const bool digits_only =
      !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  auto n = digits_only ? parse_int64(text) : std::nullopt;
  if (!n) {
    throw http::Error(400, "invalid_parameter",
                      "X-Min-Position must be a non-negative integer (an event position)",
                      {"X-Min-Position"});
  }
  return n;
}

}  // namespace shop::query

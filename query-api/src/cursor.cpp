#include "shop/query/cursor.h"

#include <array>
#include <cstdint>

#include "shop/infra/crypto.h"

namespace shop::query {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMacChars = 32;        // 128 bits of the HMAC, in hex
constexpr std::size_t kMaxCursorChars = 2048;  // longer than anything encode() makes

constexpr std::array<std::int8_t, 256> decode_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}
constexpr auto kDecode = decode_table();

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += kAlphabet[n >> 6 & 63];
    out += kAlphabet[n & 63];
  }
  if (bytes.size() - i == 1) {
    const std::uint32_t n = byte(i) << 16;
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
  } else if (bytes.size() - i == 2) {
    const std::uint32_t n = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += kAlphabet[n >> 6 & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = kDecode[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // The bits left over must be zero: otherwise two texts would decode to the same bytes.
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

CursorCodec::CursorCodec(std::string_view secret)
    : key_(infra::hmac_sha256_hex(secret, "shop query-api page cursor v1")) {}

std::string CursorCodec::mac(std::string_view payload) const {
  return infra::hmac_sha256_hex(key_, payload).substr(0, kMacChars);
}

// Layout before base64: <mac>\n<scope>\n<id>\n<key>; the key goes last because it is free text.
std::string CursorCodec::encode(std::string_view scope, const CursorPosition& position) const {
  std::string payload;
  payload.reserve(scope.size() + position.id.size() + position.key.size() + 2);
  payload.append(scope).append("\n").append(position.id).append("\n").append(position.key);
  return base64url_encode(mac(payload) + "\n" + payload);
}

std::optional<CursorPosition> CursorCodec::decode(std::string_view scope,
                                                  std::string_view cursor) const {
  if (cursor.empty() || cursor.size() > kMaxCursorChars) return std::nullopt;
  auto raw = base64url_decode(cursor);
  if (!raw || raw->size() < kMacChars + 1 || (*raw)[kMacChars] != '\n') return std::nullopt;
  const std::string_view given_mac = std::string_view(*raw).substr(0, kMacChars);
  const std::string_view payload = std::string_view(*raw).substr(kMacChars + 1);
  if (!constant_time_equal(given_mac, mac(payload))) return std::nullopt;
  const auto scope_end = payload.find('\n');
  if (scope_end == std::string_view::npos || payload.substr(0, scope_end) != scope) {
    return std::nullopt;
  }
  const auto id_end = payload.find('\n', scope_end + 1);
  if (id_end == std::string_view::npos) return std::nullopt;
  return CursorPosition{std::string(payload.substr(id_end + 1)),
                        std::string(payload.substr(scope_end + 1, id_end - scope_end - 1))};
}

}  // namespace shop::query

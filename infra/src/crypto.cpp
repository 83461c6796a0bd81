#include "shop/infra/crypto.h"

#include <jwt.h>
#include <sodium.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "shop/events/json.h"

namespace shop::infra {

void crypto_init() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

std::string hash_password(std::string_view password) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    throw std::runtime_error("password hashing ran out of memory");
  }
  return out;
}

bool verify_password(std::string_view password, const std::string& hash) {
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

namespace {
std::string raw_hmac(std::string_view key, std::string_view message) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(message.data()),
                                message.size());
  crypto_auth_hmacsha256_final(&st, mac);
  return std::string(reinterpret_cast<char*>(mac), sizeof mac);
}
}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  const std::string mac = raw_hmac(key, message);
  std::string hex(mac.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(mac.data()),
                 mac.size());
  hex.pop_back();
  return hex;
}

bool verify_hmac_sha256_hex(std::string_view key, std::string_view message,
                            std::string_view signature_hex) {
  unsigned char given[crypto_auth_hmacsha256_BYTES];
  std::size_t len = 0;
  if (signature_hex.size() != 2 * sizeof given) return false;
  if (sodium_hex2bin(given, sizeof given, signature_hex.data(), signature_hex.size(), nullptr, &len,
                     nullptr) != 0 ||
      len != sizeof given) {
    return false;
  }
  const std::string mac = raw_hmac(key, message);
  return sodium_memcmp(given, mac.data(), sizeof given) == 0;
}

std::string random_token(std::size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string out(sodium_base64_ENCODED_LEN(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                    raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

namespace {
struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;
}  // namespace

JwtCodec::JwtCodec(std::string secret, std::string issuer)
    : secret_(std::move(secret)), issuer_(std::move(issuer)) {
  if (secret_.size() < 32) throw std::runtime_error("JWT_SECRET must be at least 32 characters");
}

std::string JwtCodec::sign(const TokenClaims& c) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
  JwtPtr jwt(raw);
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("iss");
  w.String(issuer_);
  w.Key("sub");
  w.String(c.user_id);
  w.Key("typ");
  w.String(c.type);
  w.Key("jti");
  w.String(c.token_id);
  w.Key("exp");
  w.Int64(c.expires_at);
  if (!c.session_id.empty()) {
    w.Key("sid");
    w.String(c.session_id);
  }
  w.Key("roles");
  w.StartArray();
  for (const auto& r : c.roles) w.String(r);
  w.EndArray();
  w.EndObject();
  if (jwt_add_grants_json(jwt.get(), buf.GetString()) != 0 ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret_.data()),
                  static_cast<int>(secret_.size())) != 0) {
    throw std::runtime_error("jwt encoding failed");
  }
  char* s = jwt_encode_str(jwt.get());
  if (!s) throw std::runtime_error("jwt encoding failed");
  std::string token(s);
  std::free(s);
  return token;
}

std::optional<TokenClaims> JwtCodec::verify(std::string_view token, long long now) const {
  if (token.empty() || token.size() > 4096) return std::nullopt;
  const std::string t(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, t.c_str(), reinterpret_cast<const unsigned char*>(secret_.data()),
                 static_cast<int>(secret_.size())) != 0 ||
      raw == nullptr) {
    if (raw) jwt_free(raw);
    return std::nullopt;
  }
  JwtPtr jwt(raw);
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return std::nullopt;
  char* grants = jwt_get_grants_json(jwt.get(), nullptr);
  if (!grants) return std::nullopt;
  json::Document doc;
  const std::string text(grants);
  std::free(grants);
  if (!json::parse(text, doc).empty() || !doc.IsObject()) return std::nullopt;
  TokenClaims c;
  if (json::get_string(doc, "iss") != issuer_) return std::nullopt;
  c.user_id = json::get_string(doc, "sub");
  c.type = json::get_string(doc, "typ");
  c.token_id = json::get_string(doc, "jti");
  c.expires_at = json::get_int(doc, "exp", 0);
  c.session_id = json::get_string(doc, "sid");
  if (c.user_id.empty() || c.type.empty() || c.token_id.empty() || c.expires_at <= now) {
    return std::nullopt;
  }
  if (const auto* roles = json::member(doc, "roles"); roles && roles->IsArray()) {
    for (const auto& r : roles->GetArray()) {
      if (r.IsString()) c.roles.emplace_back(r.GetString());
    }
  }
  return c;
}

}  // namespace shop::infra

// Crypto through libsodium and libjwt: password hashing (argon2id), HMAC-SHA256 webhook
// signatures, and HS256 JSON Web Tokens. Nothing here is hand-written cryptography.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shop::infra {

// Must be called once before any other function here (safe to call again).
void crypto_init();

std::string hash_password(std::string_view password);  // argon2id, libsodium's interactive cost
bool verify_password(std::string_view password, const std::string& hash);

std::string hmac_sha256_hex(std::string_view key, std::string_view message);
// Constant-time comparison of a hex signature with the expected HMAC of message.
bool verify_hmac_sha256_hex(std::string_view key, std::string_view message,
                            std::string_view signature_hex);

std::string random_token(std::size_t bytes);  // url-safe base64 of random bytes

struct TokenClaims {
  std::string user_id;
  std::vector<std::string> roles;
  std::string type;  // "access" or "refresh"
  std::string token_id;
  long long expires_at = 0;  // seconds since the epoch
  std::string session_id;    // "sid": the session (refresh-token family); empty: none
};

class JwtCodec {
 public:
  JwtCodec(std::string secret, std::string issuer);
  std::string sign(const TokenClaims& claims) const;
  // Verifies signature (HS256 only: "none" and every other algorithm are refused), issuer and
  // expiry, and that subject, type and token id are present. Returns nullopt for any token that
  // fails. Which type a use needs, and the session, is the caller's to check.
  std::optional<TokenClaims> verify(std::string_view token, long long now_seconds) const;

 private:
  std::string secret_;
  std::string issuer_;
};

}  // namespace shop::infra

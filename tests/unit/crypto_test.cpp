// Password hashing, webhook HMACs, JSON Web Tokens and the bearer-token authenticator.
#include <gtest/gtest.h>
#include <jwt.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <string>

#include "shop/infra/auth.h"
#include "shop/infra/crypto.h"

namespace {

namespace http = shop::http;
using shop::infra::Authenticator;
using shop::infra::JwtCodec;
using shop::infra::TokenClaims;

constexpr long long kNow = 1'800'000'000;  // seconds since the epoch
const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";
const std::string kIssuer = "shop";
const std::string kUser = "0f8fad5b-d9cb-469f-a165-70867728950e";

class CryptoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { shop::infra::crypto_init(); }
};

std::string base64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned n = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == in.size()) {
    const unsigned n = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

TEST(Base64UrlHelperTest, KnownAnswers) {  // the helper the tests below build tokens with
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg");
  EXPECT_EQ(base64url("fo"), "Zm8");
  EXPECT_EQ(base64url("foo"), "Zm9v");
  EXPECT_EQ(base64url("foob"), "Zm9vYg");
  EXPECT_EQ(base64url("\xfb\xff"), "-_8");
}

const std::string kSession = "6f9619ff-8b86-4011-b42d-00c04fc964ff";

TokenClaims access_claims(long long expires_at = kNow + 900) {
  return {.user_id = kUser,
          .roles = {"customer", "staff"},
          .type = "access",
          .token_id = "jti-1",
          .expires_at = expires_at,
          .session_id = kSession};
}

std::string claims_json(const std::string& issuer, const std::string& sub, const std::string& typ,
                        long long exp) {
  return R"({"iss":")" + issuer + R"(","sub":")" + sub + R"(","typ":")" + typ +
         R"(","jti":"j","exp":)" + std::to_string(exp) + R"(,"roles":["admin"]})";
}

// A token signed by libjwt directly, with any algorithm.
std::string libjwt_token(jwt_alg_t alg, const std::string& secret, const std::string& grants) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return {};
  std::string token;
  if (jwt_add_grants_json(raw, grants.c_str()) == 0 &&
      jwt_set_alg(raw, alg, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) == 0) {
    if (char* s = jwt_encode_str(raw)) {
      token = s;
      std::free(s);
    }
  }
  jwt_free(raw);
  return token;
}

std::vector<std::string> split_token(const std::string& token) {
  std::vector<std::string> parts(1);
  for (char c : token) {
    if (c == '.') {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  return parts;
}

// ------------------------------------------------------------------------------------- passwords
TEST_F(CryptoTest, PasswordHashVerifies) {
  const std::string hash = shop::infra::hash_password("correct horse battery staple");
  EXPECT_EQ(hash.rfind("$argon2id$", 0), 0u) << hash;
  EXPECT_TRUE(shop::infra::verify_password("correct horse battery staple", hash));
  EXPECT_FALSE(shop::infra::verify_password("correct horse battery stapler", hash));
  EXPECT_FALSE(shop::infra::verify_password("", hash));
  EXPECT_FALSE(shop::infra::verify_password("correct horse battery staple", "not a hash"));
  EXPECT_FALSE(shop::infra::verify_password("correct horse battery staple", ""));
  // Salted: the same password never hashes the same twice.
  EXPECT_NE(shop::infra::hash_password("correct horse battery staple"), hash);
}

// ------------------------------------------------------------------------------------------ HMAC
TEST_F(CryptoTest, HmacKnownAnswersFromRfc4231) {
  // Test case 2.
  EXPECT_EQ(shop::infra::hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1.
  EXPECT_EQ(shop::infra::hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST_F(CryptoTest, HmacVerify) {
  const std::string key = "Jefe";
  const std::string message = "what do ya want for nothing?";
  const std::string good = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  EXPECT_TRUE(shop::infra::verify_hmac_sha256_hex(key, message, good));

  std::string wrong = good;
  wrong[10] = wrong[10] == '0' ? '1' : '0';
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, wrong));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex("Jeff", message, good));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message + "!", good));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, good.substr(0, 63)));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, good.substr(0, 32)));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, good + "00"));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, ""));
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, std::string(64, 'z')));
  std::string non_hex = good;
  non_hex[63] = 'g';
  EXPECT_FALSE(shop::infra::verify_hmac_sha256_hex(key, message, non_hex));
}

TEST_F(CryptoTest, RandomTokensAreUrlSafeAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string t = shop::infra::random_token(32);
    EXPECT_EQ(t.size(), 43u) << t;
    EXPECT_EQ(t.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos)
        << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 100u);
}

// ------------------------------------------------------------------------------------------- JWT
TEST_F(CryptoTest, JwtSecretMustBeLong) {
  EXPECT_THROW(JwtCodec(std::string(31, 's'), kIssuer), std::runtime_error);
  EXPECT_NO_THROW(JwtCodec(std::string(32, 's'), kIssuer));
}

TEST_F(CryptoTest, JwtRoundTrip) {
  const JwtCodec jwt(kSecret, kIssuer);
  const std::string token = jwt.sign(access_claims());
  EXPECT_EQ(split_token(token).size(), 3u) << token;
  const auto claims = jwt.verify(token, kNow);
  ASSERT_TRUE(claims.has_value());
  EXPECT_EQ(claims->user_id, kUser);
  EXPECT_EQ(claims->roles, (std::vector<std::string>{"customer", "staff"}));
  EXPECT_EQ(claims->type, "access");
  EXPECT_EQ(claims->token_id, "jti-1");
  EXPECT_EQ(claims->expires_at, kNow + 900);
  EXPECT_EQ(claims->session_id, kSession);
}

TEST_F(CryptoTest, JwtWithoutTokenIdIsRejected) {
  const JwtCodec jwt(kSecret, kIssuer);
  auto claims = access_claims();
  claims.token_id.clear();
  EXPECT_FALSE(jwt.verify(jwt.sign(claims), kNow).has_value());
}

TEST_F(CryptoTest, JwtIsSignedHs256) {
  const JwtCodec jwt(kSecret, kIssuer);
  const std::string token = jwt.sign(access_claims());
  jwt_t* raw = nullptr;
  ASSERT_EQ(jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(kSecret.data()),
                       static_cast<int>(kSecret.size())),
            0);
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(jwt_get_alg(raw), JWT_ALG_HS256);
  EXPECT_STREQ(jwt_get_grant(raw, "iss"), kIssuer.c_str());
  EXPECT_STREQ(jwt_get_grant(raw, "sub"), kUser.c_str());
  EXPECT_EQ(jwt_get_grant_int(raw, "exp"), kNow + 900);
  jwt_free(raw);
}

TEST_F(CryptoTest, ExpiredJwtIsRejected) {
  const JwtCodec jwt(kSecret, kIssuer);
  EXPECT_FALSE(jwt.verify(jwt.sign(access_claims(kNow - 1)), kNow).has_value());
  EXPECT_FALSE(jwt.verify(jwt.sign(access_claims(kNow)), kNow).has_value());
  EXPECT_TRUE(jwt.verify(jwt.sign(access_claims(kNow + 1)), kNow).has_value());
  EXPECT_FALSE(jwt.verify(jwt.sign(access_claims(kNow + 1)), kNow + 1).has_value());
}

TEST_F(CryptoTest, TamperedJwtIsRejected) {
  const JwtCodec jwt(kSecret, kIssuer);
  const auto parts = split_token(jwt.sign(access_claims()));
  ASSERT_EQ(parts.size(), 3u);
  // Another subject (and admin) under the original header and signature.
  const std::string forged_payload =
      base64url(claims_json(kIssuer, "11111111-1111-4111-8111-111111111111", "access",
                            kNow + 900));
  EXPECT_FALSE(jwt.verify(parts[0] + "." + forged_payload + "." + parts[2], kNow).has_value());
  // A flipped signature character.
  std::string sig = parts[2];
  sig[5] = sig[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(jwt.verify(parts[0] + "." + parts[1] + "." + sig, kNow).has_value());
  // No signature at all.
  EXPECT_FALSE(jwt.verify(parts[0] + "." + parts[1] + ".", kNow).has_value());
  EXPECT_FALSE(jwt.verify(parts[0] + "." + parts[1], kNow).has_value());
}

TEST_F(CryptoTest, JwtOfAnotherSecretIsRejected) {
  const JwtCodec mine(kSecret, kIssuer);
  const JwtCodec theirs("another-secret-of-at-least-32-characters", kIssuer);
  EXPECT_FALSE(mine.verify(theirs.sign(access_claims()), kNow).has_value());
  EXPECT_FALSE(theirs.verify(mine.sign(access_claims()), kNow).has_value());
}

TEST_F(CryptoTest, JwtOfAnotherIssuerIsRejected) {
  const JwtCodec mine(kSecret, kIssuer);
  const JwtCodec other(kSecret, "someone-else");
  EXPECT_FALSE(mine.verify(other.sign(access_claims()), kNow).has_value());
  // The issuer claim is required, too.
  const std::string no_issuer =
      libjwt_token(JWT_ALG_HS256, kSecret,
                   R"({"sub":")" + kUser + R"(","typ":"access","exp":)" +
                       std::to_string(kNow + 900) + "}");
  ASSERT_FALSE(no_issuer.empty());
  EXPECT_FALSE(mine.verify(no_issuer, kNow).has_value());
}

TEST_F(CryptoTest, AlgNoneIsRejected) {
  const JwtCodec jwt(kSecret, kIssuer);
  const std::string payload = base64url(claims_json(kIssuer, kUser, "access", kNow + 900));
  const std::string header = base64url(R"({"alg":"none","typ":"JWT"})");
  EXPECT_FALSE(jwt.verify(header + "." + payload + ".", kNow).has_value());
  EXPECT_FALSE(jwt.verify(header + "." + payload, kNow).has_value());
  EXPECT_FALSE(
      jwt.verify(base64url(R"({"alg":"None","typ":"JWT"})") + "." + payload + ".", kNow)
          .has_value());
}

TEST_F(CryptoTest, OtherAlgorithmsWithTheSameSecretAreRejected) {
  const JwtCodec jwt(kSecret, kIssuer);
  const std::string grants = claims_json(kIssuer, kUser, "access", kNow + 900);
  // Control: the same grants signed HS256 by libjwt are accepted, so only the algorithm differs.
  const std::string hs256 = libjwt_token(JWT_ALG_HS256, kSecret, grants);
  ASSERT_FALSE(hs256.empty());
  const auto control = jwt.verify(hs256, kNow);
  ASSERT_TRUE(control.has_value());
  EXPECT_EQ(control->roles, std::vector<std::string>{"admin"});

  for (jwt_alg_t alg : {JWT_ALG_HS384, JWT_ALG_HS512}) {
    const std::string token = libjwt_token(alg, kSecret, grants);
    ASSERT_FALSE(token.empty()) << alg;
    EXPECT_FALSE(jwt.verify(token, kNow).has_value()) << alg;
  }
}

TEST_F(CryptoTest, GarbageTokensAreRejected) {
  const JwtCodec jwt(kSecret, kIssuer);
  for (const std::string& bad : {std::string(), std::string("abc"), std::string("a.b.c"),
                                 std::string(".."), std::string("...."),
                                 std::string(5000, 'a')}) {
    EXPECT_FALSE(jwt.verify(bad, kNow).has_value()) << bad.substr(0, 20);
  }
}

// --------------------------------------------------------------------------------- Authenticator
struct FixedClock final : shop::Clock {
  shop::Timestamp now() const override {
    return shop::Timestamp{std::chrono::seconds{kNow}};
  }
};

class AuthenticatorTest : public CryptoTest {
 protected:
  http::Request with_authorization(const std::string& value) {
    http::Request req;
    req.method = "GET";
    req.headers = {{"Authorization", value}};
    return req;
  }

  void expect_401(const http::Request& req, const std::string& code) {
    try {
      (void)auth.require(req);
      ADD_FAILURE() << "accepted";
    } catch (const http::Error& e) {
      EXPECT_EQ(e.status, 401);
      EXPECT_EQ(e.code, code);
    }
  }

  // The revoked sessions, as the test sets them.
  struct FakeRevoked final : shop::infra::RevokedSessions {
    bool is_revoked(std::string_view id) const override { return ids.count(std::string(id)) > 0; }
    std::set<std::string> ids;
  };

  JwtCodec jwt{kSecret, kIssuer};
  FixedClock clock;
  FakeRevoked revoked;
  Authenticator auth{jwt, clock, &revoked};
};

TEST_F(AuthenticatorTest, ValidAccessTokenGivesThePrincipal) {
  const auto req = with_authorization("Bearer " + jwt.sign(access_claims()));
  const auto p = auth.require(req);
  EXPECT_EQ(p.user_id, kUser);
  EXPECT_TRUE(p.has_role("staff"));
  EXPECT_FALSE(p.has_role("admin"));
  const auto lower = with_authorization("bearer " + jwt.sign(access_claims()));
  EXPECT_EQ(auth.require(lower).user_id, kUser);
}

TEST_F(AuthenticatorTest, MissingHeaderIs401) {
  http::Request req;
  EXPECT_FALSE(auth.optional(req).has_value());
  try {
    (void)auth.require(req);
    ADD_FAILURE() << "accepted";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status, 401);
    EXPECT_EQ(e.code, "unauthenticated");
    ASSERT_EQ(e.headers.size(), 1u);
    EXPECT_EQ(e.headers[0].first, "WWW-Authenticate");
  }
}

TEST_F(AuthenticatorTest, NonBearerSchemeIs401) {
  const std::string token = jwt.sign(access_claims());
  expect_401(with_authorization("Basic dXNlcjpwYXNz"), "invalid_token");
  expect_401(with_authorization("Token " + token), "invalid_token");
  expect_401(with_authorization(token), "invalid_token");
  expect_401(with_authorization("Bearer "), "invalid_token");
  expect_401(with_authorization("Bearer"), "invalid_token");
  expect_401(with_authorization(""), "invalid_token");
  // A bad header is an error even where authentication is optional.
  EXPECT_THROW((void)auth.optional(with_authorization("Basic dXNlcjpwYXNz")), http::Error);
}

TEST_F(AuthenticatorTest, AccessTokenOfARevokedSessionIs401) {
  const auto req = with_authorization("Bearer " + jwt.sign(access_claims()));
  EXPECT_EQ(auth.require(req).session_id, kSession);
  revoked.ids.insert(kSession);
  expect_401(req, "invalid_token");
  EXPECT_THROW((void)auth.optional(req), http::Error);
  // Another session of the same user is unaffected.
  auto other = access_claims();
  other.session_id = "6f9619ff-8b86-4011-b42d-00c04fc96400";
  EXPECT_EQ(auth.require(with_authorization("Bearer " + jwt.sign(other))).user_id, kUser);
}

// With no list of revoked sessions it can trust, a check answers 503 rather than guessing.
TEST_F(AuthenticatorTest, RevocationListThatCannotBeReadIs503) {
  shop::infra::RevokedSessionCache unreachable(
      "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", clock);
  const Authenticator strict{jwt, clock, &unreachable};
  try {
    (void)strict.require(with_authorization("Bearer " + jwt.sign(access_claims())));
    ADD_FAILURE() << "accepted";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status, 503);
    EXPECT_EQ(e.code, "unavailable");
  }
  // The token is checked first: a bad one is still 401, without asking the list.
  expect_401(with_authorization("Bearer garbage"), "invalid_token");
}

TEST_F(AuthenticatorTest, AccessTokenWithoutASessionIs401) {
  auto claims = access_claims();
  claims.session_id.clear();
  expect_401(with_authorization("Bearer " + jwt.sign(claims)), "invalid_token");
  claims.session_id = "not-a-uuid";
  expect_401(with_authorization("Bearer " + jwt.sign(claims)), "invalid_token");
}

TEST_F(AuthenticatorTest, RefreshTokenIsNotAnAccessToken) {
  auto claims = access_claims();
  claims.type = "refresh";
  expect_401(with_authorization("Bearer " + jwt.sign(claims)), "invalid_token");
}

TEST_F(AuthenticatorTest, ExpiredOrForeignTokensAre401) {
  expect_401(with_authorization("Bearer " + jwt.sign(access_claims(kNow - 60))), "invalid_token");
  const JwtCodec other("another-secret-of-at-least-32-characters", kIssuer);
  expect_401(with_authorization("Bearer " + other.sign(access_claims())), "invalid_token");
  auto claims = access_claims();
  claims.user_id = "not-a-uuid";
  expect_401(with_authorization("Bearer " + jwt.sign(claims)), "invalid_token");
  expect_401(with_authorization("Bearer garbage"), "invalid_token");
}

TEST_F(AuthenticatorTest, RequireRole) {
  const shop::infra::Principal customer{kUser, {"customer"}};
  const shop::infra::Principal staff{kUser, {"customer", "staff"}};
  EXPECT_NO_THROW(Authenticator::require_role(customer, {"customer"}));
  EXPECT_NO_THROW(Authenticator::require_role(staff, {"admin", "staff"}));
  try {
    Authenticator::require_role(customer, {"staff", "admin"});
    ADD_FAILURE() << "a customer passed as staff";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status, 403);
    EXPECT_EQ(e.code, "forbidden");
  }
  EXPECT_THROW(Authenticator::require_role(shop::infra::Principal{kUser, {}}, {"customer"}),
               http::Error);
}

}  // namespace

#include "shop/domain/password_policy.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace shop::domain {

namespace {

// Lower-case; the comparison ignores case. Passwords of 10 characters or more that lead the
// public lists of leaked passwords (shorter ones are refused by the length rule anyway).
constexpr std::array<std::string_view, 40> kCommon = {
    "1234567890",  "12345678910", "123456789a",  "1q2w3e4r5t",   "1qaz2wsx3edc", "abcdefghij",
    "adminadmin",  "administrator", "aa12345678", "asdfghjkl1",  "changeme123",  "football12",
    "iloveyou12",  "letmein123",  "monkey1234",  "password01",   "password1",    "password12",
    "password123", "password1234", "passw0rd123", "q1w2e3r4t5",  "qwerty1234",   "qwerty12345",
    "qwerty123456", "qwertyuiop", "qwertyuiop1", "starwars12",   "sunshine12",   "superman12",
    "trustno1234", "welcome123",  "welcome1234", "zaq12wsxcde",  "0987654321",   "1111111111",
    "0000000000",  "9876543210",  "1234512345",  "shop123456"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<DomainError> check_password(std::string_view password, std::string_view email) {
  // Characters, not bytes: a UTF-8 continuation byte does not start a character.
  const auto characters = static_cast<std::size_t>(std::count_if(
      password.begin(), password.end(),
      [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  if (characters < kMinPasswordLength) {
    return DomainError{"weak_password", "the password must have at least 10 characters",
                       {"password: too short"}};
  }
  const auto p = lower(password);
  const auto e = lower(email);
  const auto local = e.substr(0, e.find('@'));
  if (p == e || (!local.empty() && p == local)) {
    return DomainError{"weak_password", "the password must not be the e-mail address",
                       {"password: same as the e-mail address"}};
  }
  if (std::find(kCommon.begin(), kCommon.end(), p) != kCommon.end()) {
    return DomainError{"weak_password", "this password is too common; choose another one",
                       {"password: in a list of common passwords"}};
  }
  return std::nullopt;
}

}  // namespace shop::domain

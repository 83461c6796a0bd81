#include "shop/domain/phone.h"

namespace shop::domain {

namespace {
constexpr std::size_t kMinDigits = 8;
constexpr std::size_t kMaxDigits = 15;

bool digit(char c) {
  return c >= '0' && c <= '9';
}
}  // namespace

bool is_e164(std::string_view phone) {
  if (phone.size() < 1 + kMinDigits || phone.size() > 1 + kMaxDigits) return false;
  if (phone[0] != '+' || phone[1] == '0') return false;
  for (std::size_t i = 1; i < phone.size(); ++i) {
    if (!digit(phone[i])) return false;
  }
  return true;
}

std::optional<std::string> normalize_phone(std::string_view typed) {
  if (typed.empty() || typed[0] != '+') return std::nullopt;
  std::string out = "+";
  for (std::size_t i = 1; i < typed.size(); ++i) {
    const char c = typed[i];
    if (digit(c)) {
      if (out.size() > kMaxDigits) return std::nullopt;  // one digit too many already
      out += c;
    } else if (c != ' ' && c != '-') {
      return std::nullopt;
    }
  }
  if (!is_e164(out)) return std::nullopt;
  return out;
}

}  // namespace shop::domain

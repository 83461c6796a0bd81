#include "shop/events/types.h"

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <cctype>
#include <cstdio>
#include <limits>

namespace shop {

std::string new_uuid() {
  thread_local boost::uuids::random_generator generator;
  return boost::uuids::to_string(generator());
}

bool is_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string uuid_from_name(std::string_view name) {
  // A fixed namespace for the shop's name-based identifiers.
  static const boost::uuids::uuid kNamespace = {{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                                 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}};
  boost::uuids::name_generator_sha1 gen(kNamespace);
  return boost::uuids::to_string(gen(name.data(), name.size()));
}

int currency_exponent(std::string_view currency) {
  static constexpr std::string_view kZero[] = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"};
  static constexpr std::string_view kThree[] = {"BHD", "KWD", "OMR", "JOD", "TND", "IQD", "LYD"};
  for (auto c : kZero) if (c == currency) return 0;
  for (auto c : kThree) if (c == currency) return 3;
  return 2;
}

std::optional<Minor> parse_money(std::string_view text, int exponent) {
  if (text.empty() || text.size() > 24) return std::nullopt;
  Minor units = 0;
  std::size_t i = 0;
  std::size_t int_digits = 0;
  constexpr Minor kMax = std::numeric_limits<Minor>::max() / 100;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++int_digits) {
    if (units > kMax / 10) return std::nullopt;
    units = units * 10 + (text[i] - '0');
  }
  if (int_digits == 0) return std::nullopt;
  int decimals = 0;
  if (i < text.size()) {
    if (text[i] != '.' || i + 1 == text.size()) return std::nullopt;
    for (++i; i < text.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i])) || decimals == exponent ||
          units > kMax) {  // as in the padding loop below: units * 10 + 9 must not overflow
        return std::nullopt;
      }
      units = units * 10 + (text[i] - '0');
      ++decimals;
    }
  }
  for (; decimals < exponent; ++decimals) {
    if (units > kMax) return std::nullopt;
    units *= 10;
  }
  return units;
}

std::string format_money(Minor amount, int exponent) {
  const bool negative = amount < 0;
  const unsigned long long abs = negative ? 0ULL - static_cast<unsigned long long>(amount)
                                          : static_cast<unsigned long long>(amount);
  unsigned long long scale = 1;
  for (int i = 0; i < exponent; ++i) scale *= 10;
  std::string out = negative ? "-" : "";
  out += std::to_string(abs / scale);
  if (exponent > 0) {
    std::string frac = std::to_string(abs % scale);
    out += '.';
    out.append(static_cast<std::size_t>(exponent) - frac.size(), '0');
    out += frac;
  }
  return out;
}

std::string format_time(Timestamp t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ld.%06ldZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), long(hms.hours().count()),
                long(hms.minutes().count()), long(hms.seconds().count()),
                long(hms.subseconds().count()));
  return buf;
}

std::optional<Timestamp> parse_time(std::string_view s) {
  using namespace std::chrono;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    if (pos + len > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!num(0, 4, y) || s.size() < 20 || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' ||
      !num(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, h) ||
      s[13] != ':' || !num(14, 2, mi) || s[16] != ':' || !num(17, 2, se)) {
    return std::nullopt;
  }
  const year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 60) return std::nullopt;
  std::size_t i = 19;
  long micros = 0;
  if (i < s.size() && s[i] == '.') {
    int digits = 0;
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, ++digits) {
      if (digits < 6) micros = micros * 10 + (s[i] - '0');
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (i >= s.size()) return std::nullopt;
  long offset_minutes = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    int oh, om;
    if (!num(i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !num(i + 4, 2, om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  Timestamp t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{se} + microseconds{micros};
  return t - minutes{offset_minutes};
}

Timestamp SystemClock::now() const {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

}  // namespace shop

// Value types shared by every layer: identifiers, money and time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shop {

// --- identifiers: UUIDs in their canonical lower-case text form -------------------------------
std::string new_uuid();                                  // random (version 4)
bool is_uuid(std::string_view text);                     // canonical 8-4-4-4-12 hex form
std::string uuid_from_name(std::string_view name);       // deterministic (version 5)

// --- money: integer minor units inside, decimal strings at the edges ---------------------------
using Minor = std::int64_t;
// Number of decimal places of an ISO 4217 currency (2 unless known otherwise, e.g. JPY: 0).
int currency_exponent(std::string_view currency);
// "1299.99" -> 129999 for exponent 2. Rejects signs, exponents, too many decimals, overflow.
std::optional<Minor> parse_money(std::string_view text, int exponent);
// 129999 -> "1299.99" for exponent 2.
std::string format_money(Minor amount, int exponent);

// --- time: always UTC ---------------------------------------------------------------------------
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;
std::string format_time(Timestamp t);                      // 2026-11-21T20:52:26.123456Z
std::optional<Timestamp> parse_time(std::string_view text);  // RFC 3339, any offset -> UTC

struct Clock {
  virtual ~Clock() = default;
  virtual Timestamp now() const = 0;
};
struct SystemClock final : Clock {
  Timestamp now() const override;
};

}  // namespace shop

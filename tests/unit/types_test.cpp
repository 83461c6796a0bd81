// Value types shared by every layer: money, time, identifiers.
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <set>
#include <string>

#include "shop/events/types.h"

namespace {

using shop::format_money;
using shop::format_time;
using shop::parse_money;
using shop::parse_time;
using shop::Timestamp;
using namespace std::chrono;

// ----------------------------------------------------------------------------------------- money
TEST(MoneyTest, ParseWithExponentTwo) {
  EXPECT_EQ(parse_money("1299.99", 2), 129999);
  EXPECT_EQ(parse_money("1299.9", 2), 129990);
  EXPECT_EQ(parse_money("1299", 2), 129900);
  EXPECT_EQ(parse_money("0", 2), 0);
  EXPECT_EQ(parse_money("0.01", 2), 1);
  EXPECT_EQ(parse_money("007.50", 2), 750);
  EXPECT_EQ(parse_money("999999999999.99", 2), 99999999999999);
}

TEST(MoneyTest, ParseWithExponentZeroAndThree) {
  EXPECT_EQ(parse_money("1500", 0), 1500);
  EXPECT_EQ(parse_money("0", 0), 0);
  EXPECT_EQ(parse_money("1.5", 0), std::nullopt);
  EXPECT_EQ(parse_money("1.0", 0), std::nullopt);
  EXPECT_EQ(parse_money("12.345", 3), 12345);
  EXPECT_EQ(parse_money("12.3", 3), 12300);
  EXPECT_EQ(parse_money("12", 3), 12000);
  EXPECT_EQ(parse_money("0.001", 3), 1);
  EXPECT_EQ(parse_money("1.2345", 3), std::nullopt);
}

TEST(MoneyTest, ParseRejectsMalformedText) {
  for (const char* bad : {"", "-1", "+1", "1.", ".5", "1.234", "1e3", "1E3", " 1", "1 ", "1,50",
                          "abc", "1.2.3", "0x10", "1..2", "\xd9\xa1", "1.-2", "NaN"}) {
    EXPECT_EQ(parse_money(bad, 2), std::nullopt) << '"' << bad << '"';
  }
  EXPECT_EQ(parse_money(std::string_view("1\0", 2), 2), std::nullopt);
}

TEST(MoneyTest, ParseRejectsOverflow) {
  // int64 max is 9223372036854775807: in minor units of exponent 2, 92233720368547758.07.
  EXPECT_EQ(parse_money("9223372036854775807", 2), std::nullopt);
  EXPECT_EQ(parse_money("9223372036854775807", 0), std::nullopt);
  EXPECT_EQ(parse_money("99999999999999999999", 2), std::nullopt);
  EXPECT_EQ(parse_money("92233720368547759.99", 2), std::nullopt);
  EXPECT_EQ(parse_money("92233720368547758.999", 3), std::nullopt);
  EXPECT_EQ(parse_money("9223372036854775.999", 3), std::nullopt);
  EXPECT_EQ(parse_money("1" + std::string(30, '0'), 2), std::nullopt);
  // Whatever is accepted is exact and non-negative.
  for (const char* text : {"92233720368547758", "92233720368547758.07", "9223372036854775.99",
                           "922337203685477.999", "92233720368547.58"}) {
    for (int exponent : {0, 2, 3}) {
      const auto v = parse_money(text, exponent);
      if (!v) continue;
      EXPECT_GE(*v, 0) << text << " exponent " << exponent;
      EXPECT_EQ(parse_money(format_money(*v, exponent), exponent), v)
          << text << " exponent " << exponent;
    }
  }
}

TEST(MoneyTest, Format) {
  EXPECT_EQ(format_money(129999, 2), "1299.99");
  EXPECT_EQ(format_money(5, 2), "0.05");
  EXPECT_EQ(format_money(50, 2), "0.50");
  EXPECT_EQ(format_money(0, 2), "0.00");
  EXPECT_EQ(format_money(-5, 2), "-0.05");
  EXPECT_EQ(format_money(-129999, 2), "-1299.99");
  EXPECT_EQ(format_money(1234, 0), "1234");
  EXPECT_EQ(format_money(0, 0), "0");
  EXPECT_EQ(format_money(1234, 3), "1.234");
  EXPECT_EQ(format_money(1, 3), "0.001");
  EXPECT_EQ(format_money(std::numeric_limits<std::int64_t>::max(), 2), "92233720368547758.07");
  EXPECT_EQ(format_money(std::numeric_limits<std::int64_t>::min(), 2), "-92233720368547758.08");
}

TEST(MoneyTest, FormatThenParseRoundTrips) {
  for (std::int64_t v : {0LL, 1LL, 9LL, 10LL, 99LL, 100LL, 129999LL, 100000000LL,
                         99999999999999LL}) {
    for (int exponent : {0, 2, 3}) {
      EXPECT_EQ(parse_money(format_money(v, exponent), exponent), v) << v << " " << exponent;
    }
  }
}

TEST(MoneyTest, CurrencyExponent) {
  EXPECT_EQ(shop::currency_exponent("EUR"), 2);
  EXPECT_EQ(shop::currency_exponent("USD"), 2);
  EXPECT_EQ(shop::currency_exponent("JPY"), 0);
  EXPECT_EQ(shop::currency_exponent("KWD"), 3);
  EXPECT_EQ(shop::currency_exponent("BHD"), 3);
  EXPECT_EQ(shop::currency_exponent("XYZ"), 2);
}

// ------------------------------------------------------------------------------------------ time
Timestamp at(int y, unsigned mo, unsigned d, int h, int mi, int s, long us = 0) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
         microseconds{us};
}

TEST(TimeTest, FormatIsUtcWithMicroseconds) {
  EXPECT_EQ(format_time(at(2026, 11, 21, 20, 52, 26, 123456)), "2026-11-21T20:52:26.123456Z");
  EXPECT_EQ(format_time(at(2024, 2, 29, 0, 0, 0)), "2024-02-29T00:00:00.000000Z");
  EXPECT_EQ(format_time(at(1970, 1, 1, 0, 0, 0, 1)), "1970-01-01T00:00:00.000001Z");
  EXPECT_EQ(format_time(at(2026, 12, 31, 23, 59, 59, 999999)), "2026-12-31T23:59:59.999999Z");
}

TEST(TimeTest, ParseUtc) {
  EXPECT_EQ(parse_time("2026-11-21T20:52:26Z"), at(2026, 11, 21, 20, 52, 26));
  EXPECT_EQ(parse_time("2026-11-21T20:52:26.123456Z"), at(2026, 11, 21, 20, 52, 26, 123456));
  EXPECT_EQ(parse_time("2026-11-21t20:52:26z"), at(2026, 11, 21, 20, 52, 26));
  EXPECT_EQ(parse_time("2026-11-21 20:52:26Z"), at(2026, 11, 21, 20, 52, 26));
}

TEST(TimeTest, ParseFractionalSeconds) {
  EXPECT_EQ(parse_time("2026-11-21T20:52:26.5Z"), at(2026, 11, 21, 20, 52, 26, 500000));
  EXPECT_EQ(parse_time("2026-11-21T20:52:26.001Z"), at(2026, 11, 21, 20, 52, 26, 1000));
  // Beyond microseconds, digits are truncated.
  EXPECT_EQ(parse_time("2026-11-21T20:52:26.123456789Z"), at(2026, 11, 21, 20, 52, 26, 123456));
}

TEST(TimeTest, ParseConvertsOffsetsToUtc) {
  EXPECT_EQ(parse_time("2026-11-21T22:52:26+02:00"), at(2026, 11, 21, 20, 52, 26));
  EXPECT_EQ(parse_time("2026-11-21T15:22:26-05:30"), at(2026, 11, 21, 20, 52, 26));
  EXPECT_EQ(parse_time("2026-11-21T20:52:26+00:00"), at(2026, 11, 21, 20, 52, 26));
  EXPECT_EQ(parse_time("2026-11-21T20:52:26-00:00"), at(2026, 11, 21, 20, 52, 26));
  // Across a day and a year boundary.
  EXPECT_EQ(parse_time("2027-01-01T01:00:00.25+02:00"), at(2026, 12, 31, 23, 0, 0, 250000));
  EXPECT_EQ(parse_time("2026-12-31T23:00:00-01:00"), at(2027, 1, 1, 0, 0, 0));
  const auto t = parse_time("2026-03-01T00:30:00+01:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_time(*t), "2026-02-28T23:30:00.000000Z");
}

TEST(TimeTest, ParseRejectsInvalidDatesAndTimes) {
  for (const char* bad : {
           "2026-02-30T00:00:00Z",   // no such day
           "2026-02-29T00:00:00Z",   // not a leap year
           "2026-13-01T00:00:00Z",   // month 13
           "2026-00-10T00:00:00Z",   // month 0
           "2026-04-31T00:00:00Z",   // April has 30 days
           "2026-01-00T00:00:00Z",   // day 0
           "2026-11-21T24:00:00Z",   // hour 24
           "2026-11-21T20:60:00Z",   // minute 60
           "2026-11-21T20:52:61Z",   // second 61
           "2026-11-21T20:52:26",    // no zone
           "2026-11-21T20:52:26.Z",  // empty fraction
           "2026-11-21T20:52:26ZZ",  // trailing garbage
           "2026-11-21T20:52:26Z ",  // trailing space
           "2026-11-21T20:52:26+0200",   // offset without colon
           "2026-11-21T20:52:26+02",     // short offset
           "2026-11-21T20:52:26+24:00",  // offset hour out of range
           "2026-11-21T20:52:26+01:60",  // offset minute out of range
           "2026-11-21",             // date only
           "2026/11/21T20:52:26Z",   // wrong separators
           "2026-11-21X20:52:26Z",   // wrong date-time separator
           "26-11-21T20:52:26Z",     // short year
           " 2026-11-21T20:52:26Z",  // leading space
           "",
       }) {
    EXPECT_EQ(parse_time(bad), std::nullopt) << '"' << bad << '"';
  }
  EXPECT_EQ(parse_time("2024-02-29T12:00:00Z"), at(2024, 2, 29, 12, 0, 0));
}

TEST(TimeTest, FormatThenParseRoundTrips) {
  const Timestamp now = shop::SystemClock{}.now();
  const auto back = parse_time(format_time(now));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, now);
  const Timestamp t = at(2000, 2, 29, 13, 14, 15, 161718);
  EXPECT_EQ(parse_time(format_time(t)), t);
}

// ----------------------------------------------------------------------------------- identifiers
TEST(UuidTest, IsUuid) {
  EXPECT_TRUE(shop::is_uuid("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_TRUE(shop::is_uuid("00000000-0000-0000-0000-000000000000"));
  // Upper case hex digits are accepted, as by the schemas' uuid pattern.
  EXPECT_TRUE(shop::is_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
  for (const char* bad : {"",
                          "0f8fad5b-d9cb-469f-a165-70867728950",    // too short
                          "0f8fad5b-d9cb-469f-a165-70867728950e0",  // too long
                          "0f8fad5bd9cb469fa16570867728950e",       // no dashes
                          "0f8fad5b-d9cb-469f-a16570867728950e-",   // dash misplaced
                          "0f8fad5-bd9cb-469f-a165-70867728950e",   // dash misplaced
                          "gf8fad5b-d9cb-469f-a165-70867728950e",   // not hex
                          "0f8fad5b_d9cb_469f_a165_70867728950e",   // underscores
                          "{0f8fad5b-d9cb-469f-a165-70867728950}",  // braces
                          " f8fad5b-d9cb-469f-a165-70867728950e"}) {
    EXPECT_FALSE(shop::is_uuid(bad)) << '"' << bad << '"';
  }
}

TEST(UuidTest, NewUuidIsRandomVersion4) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = shop::new_uuid();
    ASSERT_TRUE(shop::is_uuid(id)) << id;
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    for (char c : id) EXPECT_FALSE(c >= 'A' && c <= 'F') << id << " is not lower case";
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(UuidTest, UuidFromNameIsDeterministicVersion5) {
  const std::string a = shop::uuid_from_name("order-number:42");
  EXPECT_EQ(a, shop::uuid_from_name("order-number:42"));
  EXPECT_NE(a, shop::uuid_from_name("order-number:43"));
  EXPECT_NE(shop::uuid_from_name(""), shop::uuid_from_name(" "));
  EXPECT_TRUE(shop::is_uuid(a));
  EXPECT_EQ(a[14], '5');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);
  // RFC 4122 version 5 in the DNS namespace: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org").
  EXPECT_EQ(shop::uuid_from_name("python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

}  // namespace

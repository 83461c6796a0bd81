#include "replay/format.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace shop::replay {

namespace {

constexpr std::string_view kCsvHeader =
    "position,stream_id,stream_version,type,schema_version,occurred_at,event_id,correlation_id,"
    "causation_id,actor,data\r\n";

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// RFC 4180: quote a field only when it holds a comma, a quote, CR or LF; double the quotes.
void append_csv_field(std::string& out, std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(text);
    return;
  }
  out.push_back('"');
  for (;;) {
    const auto q = text.find('"');
    if (q == std::string_view::npos) break;
    out.append(text.substr(0, q + 1));
    out.push_back('"');
    text.remove_prefix(q + 1);
  }
  out.append(text);
  out.push_back('"');
}

void append2(std::string& out, unsigned v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

}  // namespace

std::string_view preamble(Format format) {
  return format == Format::kCsv ? kCsvHeader : std::string_view{};
}

void append_json_string(std::string& out, std::string_view text) {
  events::append_json_string(out, text);
}

void append_json_line(std::string& out, const Envelope& e) {
  events::append_envelope_json(out, e);
  out.push_back('\n');
}

void append_csv_record(std::string& out, const Envelope& e) {
  append_int(out, e.position);
  out.push_back(',');
  append_csv_field(out, e.stream_id);
  out.push_back(',');
  append_int(out, e.stream_version);
  out.push_back(',');
  append_csv_field(out, e.type);
  out.push_back(',');
  append_int(out, e.schema_version);
  out.push_back(',');
  append_csv_field(out, e.occurred_at);
  out.push_back(',');
  append_csv_field(out, e.event_id);
  out.push_back(',');
  append_csv_field(out, e.correlation_id);
  out.push_back(',');
  append_csv_field(out, e.causation_id);
  out.push_back(',');
  if (e.actor) append_csv_field(out, *e.actor);
  out.push_back(',');
  append_csv_field(out, e.data);
  out.append("\r\n");
}

void append_record(std::string& out, Format format, const Envelope& e) {
  if (format == Format::kCsv) {
    append_csv_record(out, e);
  } else {
    append_json_line(out, e);
  }
}

void append_timestamp(std::string& out, std::int64_t unix_micros) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds{unix_micros}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const int y = static_cast<int>(ymd.year());
  if (y < 1 || y > 9999) throw std::out_of_range("timestamp outside the years 1..9999");
  const auto micros_of_day = (t - day).count();
  const auto seconds_of_day = static_cast<unsigned>(micros_of_day / 1'000'000);
  auto fraction = static_cast<unsigned>(micros_of_day % 1'000'000);
  append2(out, static_cast<unsigned>(y) / 100);
  append2(out, static_cast<unsigned>(y) % 100);
  out.push_back('-');
  append2(out, static_cast<unsigned>(ymd.month()));
  out.push_back('-');
  append2(out, static_cast<unsigned>(ymd.day()));
  out.push_back('T');
  append2(out, seconds_of_day / 3600);
  out.push_back(':');
  append2(out, seconds_of_day / 60 % 60);
  out.push_back(':');
  append2(out, seconds_of_day % 60);
  out.push_back('.');
  char digits[6];
  for (int i = 5; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  out.append(digits, 6);
  out.push_back('Z');
}

std::string format_timestamp(std::int64_t unix_micros) {
  std::string out;
  out.reserve(27);
  append_timestamp(out, unix_micros);
  return out;
}

void append_uuid(std::string& out, const unsigned char* b) {
  static constexpr char kHex[] = "0123456789abcdef";
  char text[36];
  int j = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text[j++] = '-';
    text[j++] = kHex[b[i] >> 4];
    text[j++] = kHex[b[i] & 0xf];
  }
  out.append(text, 36);
}

// --- canonical jsonb text -------------------------------------------------------------------

namespace {

// A parsed JSON value with numbers kept as canonical numeric text and strings decoded.
struct Node {
  enum Kind { kNull, kTrue, kFalse, kNumber, kString, kArray, kObject } kind = kNull;
  std::string text;  // number (canonical) or string (decoded UTF-8)
  std::vector<Node> items;
  std::vector<std::pair<std::string, Node>> members;
};

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  Node parse_document() {
    skip_ws();
    Node n = parse_value(0);
    skip_ws();
    if (pos_ != in_.size()) fail("unexpected text after the value");
    return n;
  }

 private:
  static constexpr int kMaxDepth = 1000;

  [[noreturn]] void fail(const std::string& what) const {
    throw JsonError("invalid JSON at offset " + std::to_string(pos_) + ": " + what);
  }
  bool at_end() const { return pos_ >= in_.size(); }
  char peek() const { return at_end() ? '\0' : in_[pos_]; }
  void skip_ws() {
    while (!at_end() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r')) {
      ++pos_;
    }
  }
  void expect_word(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) fail("unexpected character");
    pos_ += word.size();
  }

  Node parse_value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    Node n;
    switch (peek()) {
      case '{':
        n.kind = Node::kObject;
        parse_object(n, depth);
        break;
      case '[':
        n.kind = Node::kArray;
        parse_array(n, depth);
        break;
      case '"':
        n.kind = Node::kString;
        n.text = parse_string();
        break;
      case 't':
        expect_word("true");
        n.kind = Node::kTrue;
        break;
      case 'f':
        expect_word("false");
        n.kind = Node::kFalse;
        break;
      case 'n':
        expect_word("null");
        n.kind = Node::kNull;
        break;
      default:
        n.kind = Node::kNumber;
        n.text = parse_number();
    }
    return n;
  }

  void parse_object(Node& n, int depth) {
    ++pos_;  // {
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      if (peek() != '"') fail("expected a member name");
      std::string key = parse_string();
      skip_ws();
      if (peek() != ':') fail("expected ':'");
      ++pos_;
      skip_ws();
      n.members.emplace_back(std::move(key), parse_value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      fail("expected ',' or '}'");
    }
    // jsonb order: shorter keys first, then bytewise; of equal keys the last one written wins.
    std::vector<std::size_t> order(n.members.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto& ka = n.members[a].first;
      const auto& kb = n.members[b].first;
      if (ka.size() != kb.size()) return ka.size() < kb.size();
      return ka < kb;  // std::string compares bytes as unsigned char
    });
    std::vector<std::pair<std::string, Node>> sorted;
    sorted.reserve(order.size());
    for (std::size_t i : order) {
      if (!sorted.empty() && sorted.back().first == n.members[i].first) {
        sorted.back().second = std::move(n.members[i].second);  // a later duplicate replaces
      } else {
        sorted.push_back(std::move(n.members[i]));
      }
    }
    n.members = std::move(sorted);
  }

  void parse_array(Node& n, int depth) {
    ++pos_;  // [
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_ws();
      n.items.push_back(parse_value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return;
      }
      fail("expected ',' or ']'");
    }
  }

  unsigned parse_hex4() {
    if (pos_ + 4 > in_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = in_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail("bad \\u escape");
      }
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Copies one UTF-8 encoded character, refusing overlong forms, surrogates and bytes that
  // cannot start or continue a character (PostgreSQL refuses such text in a UTF-8 database).
  void copy_utf8_char(std::string& out) {
    const auto c = static_cast<unsigned char>(in_[pos_]);
    int extra = 0;
    unsigned cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      fail("invalid UTF-8");
    }
    if (pos_ + static_cast<std::size_t>(extra) >= in_.size()) fail("invalid UTF-8");
    for (int i = 1; i <= extra; ++i) {
      const auto cc = static_cast<unsigned char>(in_[pos_ + static_cast<std::size_t>(i)]);
      if ((cc & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
      fail("invalid UTF-8");
    }
    out.append(in_.data() + pos_, static_cast<std::size_t>(extra) + 1);
    pos_ += static_cast<std::size_t>(extra) + 1;
  }

  std::string parse_string() {
    ++pos_;  // "
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("control character in a string");
      if (c >= 0x80) {
        copy_utf8_char(out);
        continue;
      }
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (at_end()) fail("unterminated string");
      switch (in_[pos_++]) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp == 0) fail("\\u0000 cannot be stored in jsonb");
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("low surrogate without a high surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (in_.substr(pos_, 2) != "\\u") fail("high surrogate without a low surrogate");
            pos_ += 2;
            const unsigned low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate without a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }

  // JSON number grammar; the result is the text PostgreSQL's numeric prints for the value.
  std::string parse_number() {
    bool negative = false;
    if (peek() == '-') {
      negative = true;
      ++pos_;
    }
    auto is_digit = [&] { return !at_end() && in_[pos_] >= '0' && in_[pos_] <= '9'; };
    if (!is_digit()) fail("unexpected character");
    std::string int_digits, frac_digits;
    if (in_[pos_] == '0') {
      int_digits = "0";
      ++pos_;
    } else {
      while (is_digit()) int_digits.push_back(in_[pos_++]);
    }
    if (peek() == '.') {
      ++pos_;
      if (!is_digit()) fail("digits expected after '.'");
      while (is_digit()) frac_digits.push_back(in_[pos_++]);
    }
    long exponent = 0;
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      bool exp_negative = false;
      if (peek() == '+' || peek() == '-') exp_negative = in_[pos_++] == '-';
      if (!is_digit()) fail("digits expected in the exponent");
      while (is_digit()) {
        exponent = exponent * 10 + (in_[pos_++] - '0');
        if (exponent > 1000) fail("exponent out of range");
      }
      if (exp_negative) exponent = -exponent;
    }
    // value = 0.<all digits> shifted: the point sits after int_digits.size() + exponent digits.
    std::string digits = int_digits + frac_digits;
    long point = static_cast<long>(int_digits.size()) + exponent;
    const long scale = std::max(0L, static_cast<long>(frac_digits.size()) - exponent);
    // Integer part: digits before the point (padded with zeros), without leading zeros.
    std::string int_part;
    if (point > 0) {
      const auto have = std::min<long>(point, static_cast<long>(digits.size()));
      int_part = digits.substr(0, static_cast<std::size_t>(have));
      int_part.append(static_cast<std::size_t>(point - have), '0');
    }
    const auto nz = int_part.find_first_not_of('0');
    int_part = nz == std::string::npos ? "0" : int_part.substr(nz);
    // Fraction: `scale` digits after the point (zeros where the number has none).
    std::string frac_part;
    for (long i = 0; i < scale; ++i) {
      const long idx = point + i;
      frac_part.push_back(idx >= 0 && idx < static_cast<long>(digits.size())
                              ? digits[static_cast<std::size_t>(idx)]
                              : '0');
    }
    const bool zero = digits.find_first_not_of('0') == std::string::npos;
    std::string out;
    if (negative && !zero) out.push_back('-');
    out += int_part;
    if (!frac_part.empty()) {
      out.push_back('.');
      out += frac_part;
    }
    return out;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

void write_node(std::string& out, const Node& n) {
  switch (n.kind) {
    case Node::kNull:
      out.append("null");
      break;
    case Node::kTrue:
      out.append("true");
      break;
    case Node::kFalse:
      out.append("false");
      break;
    case Node::kNumber:
      out.append(n.text);
      break;
    case Node::kString:
      append_json_string(out, n.text);
      break;
    case Node::kArray:
      out.push_back('[');
      for (std::size_t i = 0; i < n.items.size(); ++i) {
        if (i) out.append(", ");
        write_node(out, n.items[i]);
      }
      out.push_back(']');
      break;
    case Node::kObject:
      out.push_back('{');
      for (std::size_t i = 0; i < n.members.size(); ++i) {
        if (i) out.append(", ");
        append_json_string(out, n.members[i].first);
        out.append(": ");
        write_node(out, n.members[i].second);
      }
      out.push_back('}');
      break;
  }
}

}  // namespace

std::string canonical_jsonb(std::string_view json) {
  const Node root = Parser(json).parse_document();
  std::string out;
  out.reserve(json.size() + json.size() / 8);
  write_node(out, root);
  return out;
}

}  // namespace shop::replay

// shopctl replay and shopctl schemas against a real PostgreSQL: events are appended through the
// event store, replayed through the same functions shopctl's main() calls, and the output is
// parsed and compared with what was appended: the JSON lines envelope field by field and byte by
// byte, CSV quoting, every filter, the horizon (an append held open), errors and exit codes. The
// record format's pieces (escaping, timestamps, canonical jsonb text) are checked on their own
// and against PostgreSQL's own jsonb output.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <thread>

#include "analyst.h"
#include "replay/copy_decoder.h"
#include "replay/format.h"
#include "replay/output.h"
#include "replay/progress.h"
#include "replay/store_source.h"
#include "shop/events/events.h"
#include "shop/events/json.h"
#include "shop/events/types.h"
#include "shop/infra/config.h"
#include "shop/infra/crypto.h"
#include "shop/infra/event_store.h"
#include "shop/infra/pg.h"
#include "shop/query/app.h"
#include "support/pg_fixture.h"

namespace shop::replay {
namespace {

namespace fs = std::filesystem;

// --- helpers ------------------------------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto nl = text.find('\n', start);
    if (nl == std::string::npos) {
      ADD_FAILURE() << "the last line has no line feed: " << text.substr(start);
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// RFC 4180 reader: records end with CRLF; quoted fields may hold commas, CR, LF and "".
std::vector<std::vector<std::string>> parse_csv(std::string_view s) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < s.size() && s[i + 1] == '"') {
          field.push_back('"');
          i += 2;
        } else {
          quoted = false;
          ++i;
        }
      } else {
        field.push_back(c);
        ++i;
      }
    } else if (c == '"' && field.empty()) {
      quoted = true;
      ++i;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      ++i;
    } else if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      i += 2;
    } else {
      EXPECT_NE(c, '\n') << "a bare LF outside quotes at offset " << i;
      EXPECT_NE(c, '"') << "a quote inside an unquoted field at offset " << i;
      field.push_back(c);
      ++i;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field";
  EXPECT_TRUE(row.empty() && field.empty()) << "the last record does not end with CRLF";
  return rows;
}

const std::vector<std::string> kEnvelopeFields = {
    "position",    "stream_id", "stream_version", "type",         "schema_version",
    "occurred_at", "event_id",  "correlation_id", "causation_id", "actor",
    "data"};

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "replay-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    return out;
  }

 private:
  fs::path path_;
};

struct CliRun {
  int code = -1;
  std::string out;  // records (replay) or text (schemas)
  std::string err;
};

// Runs one analyst command line the way shopctl does. Records written to stdout land in a file
// (standing in for the descriptor), so both --output and stdout can be checked.
CliRun shopctl(const std::vector<std::string>& args, const std::string& database_url,
               bool err_is_terminal = false) {
  TempDir dir;
  const std::string stdout_path = dir.file("stdout");
  const int fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  std::ostringstream text, err;
  tools::Console console{fd, &text, &err, err_is_terminal};
  CliRun run;
  run.code = tools::run_analyst_command_line(
      args, infra::Config::from_map({{"DATABASE_URL", database_url}}), console);
  ::close(fd);
  run.out = read_file(stdout_path) + text.str();
  run.err = err.str();
  return run;
}

// --- the record format on its own --------------------------------------------------------------

Envelope sample_envelope() {
  Envelope e;
  e.position = 42;
  e.stream_id = "order-6f1c2b1e-8a47-4a55-9a53-0f8b3d1f2a10";
  e.stream_version = 3;
  e.type = "OrderPlaced";
  e.schema_version = 1;
  e.occurred_at = "2026-11-21T20:52:26.123456Z";
  e.event_id = "0b7e7c1a-52b8-4c2e-9b0e-8e7b0d1e9f11";
  e.correlation_id = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
  e.causation_id = "2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
  e.actor = "3c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
  e.data = R"({"total": 1299, "order_id": "x"})";
  return e;
}

TEST(ReplayFormat, JsonLineIsTheEnvelopeInItsFixedOrder) {
  std::string out;
  Envelope e = sample_envelope();
  append_json_line(out, e);
  EXPECT_EQ(out, R"({"position":42,"stream_id":"order-6f1c2b1e-8a47-4a55-9a53-0f8b3d1f2a10",)"
                 R"("stream_version":3,"type":"OrderPlaced","schema_version":1,)"
                 R"("occurred_at":"2026-11-21T20:52:26.123456Z",)"
                 R"("event_id":"0b7e7c1a-52b8-4c2e-9b0e-8e7b0d1e9f11",)"
                 R"("correlation_id":"1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",)"
                 R"("causation_id":"2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",)"
                 R"("actor":"3c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",)"
                 R"("data":{"total": 1299, "order_id": "x"}})"
                 "\n");
  out.clear();
  e.actor.reset();
  append_record(out, Format::kJsonLines, e);
  EXPECT_NE(out.find(R"("actor":null,"data":)"), std::string::npos) << out;
  EXPECT_EQ(preamble(Format::kJsonLines), "");
}

TEST(ReplayFormat, CsvQuotesCommasQuotesAndLineBreaks) {
  EXPECT_EQ(preamble(Format::kCsv),
            "position,stream_id,stream_version,type,schema_version,occurred_at,event_id,"
            "correlation_id,causation_id,actor,data\r\n");
  Envelope e = sample_envelope();
  e.stream_id = "note-a,\"b\"\nc";
  e.type = "Plain";
  e.actor.reset();
  e.data = R"({"text": "x, \"y\""})";
  std::string out;
  append_csv_record(out, e);
  EXPECT_EQ(
      out,
      "42,\"note-a,\"\"b\"\"\nc\",3,Plain,1,2026-11-21T20:52:26.123456Z,"
      "0b7e7c1a-52b8-4c2e-9b0e-8e7b0d1e9f11,1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f,"
      "2c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f,,\"{\"\"text\"\": \"\"x, \\\"\"y\\\"\"\"\"}\"\r\n");
  const auto rows = parse_csv(out);
  ASSERT_EQ(rows.size(), 1u);
  ASSERT_EQ(rows[0].size(), 11u);
  EXPECT_EQ(rows[0][1], "note-a,\"b\"\nc");
  EXPECT_EQ(rows[0][9], "");
  EXPECT_EQ(rows[0][10], e.data);
  // A carriage return alone also needs quotes.
  out.clear();
  e.stream_id = "a\rb";
  append_csv_record(out, e);
  EXPECT_EQ(out.substr(0, 10), "42,\"a\rb\",3");
}

TEST(ReplayFormat, StringsAreEscapedAsJsonbEscapesThem) {
  std::string out;
  append_json_string(out, "q\" b\\ \b\f\n\r\t \x01\x1f\x7f / gr\xc3\xbc\xc3\x9f");
  EXPECT_EQ(out, "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001\\u001f\x7f / gr\xc3\xbc\xc3\x9f\"");
}

TEST(ReplayFormat, TimestampsHaveSixFractionalDigitsInUtc) {
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_timestamp(951'782'400'000'001), "2000-02-29T00:00:00.000001Z");
  EXPECT_EQ(format_timestamp(1'795'294'346'123'456), "2026-11-21T20:52:26.123456Z");
  EXPECT_THROW(format_timestamp(253'402'300'800'000'000), std::out_of_range);  // year 10000
  const unsigned char id[16] = {0x0b, 0x7e, 0x7c, 0x1a, 0x52, 0xb8, 0x4c, 0x2e,
                                0x9b, 0x0e, 0x8e, 0x7b, 0x0d, 0x1e, 0x9f, 0xff};
  std::string uuid;
  append_uuid(uuid, id);
  EXPECT_EQ(uuid, "0b7e7c1a-52b8-4c2e-9b0e-8e7b0d1e9fff");
}

TEST(ReplayFormat, SinceAndUntilAreRfc3339UtcOnly) {
  using tools::parse_utc_timestamp;
  EXPECT_EQ(parse_utc_timestamp("2026-11-21T20:52:26Z"), 1'795'294'346'000'000);
  EXPECT_EQ(parse_utc_timestamp("2026-11-21T20:52:26.123456Z"), 1'795'294'346'123'456);
  EXPECT_EQ(parse_utc_timestamp("2026-11-21T20:52:26.1Z"), 1'795'294'346'100'000);
  EXPECT_EQ(parse_utc_timestamp("2026-11-21t20:52:26z"), 1'795'294'346'000'000);
  EXPECT_EQ(parse_utc_timestamp("2026-11-21T20:52:26+00:00"), 1'795'294'346'000'000);
  EXPECT_EQ(parse_utc_timestamp("2024-02-29T00:00:00Z"), 1'709'164'800'000'000);
  for (const char* bad :
       {"", "2026-11-21", "2026-11-21T20:52:26", "2026-11-21T20:52:26+01:00",
        "2026-11-21T20:52:26-00:00", "2026-11-21 20:52:26Z", "2026-11-21T20:52Z",
        "2026-11-21T20:52:26.Z", "2026-11-21T20:52:26.1234567Z", "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-21T24:00:00Z",
        "2026-11-21T23:60:00Z", "2026-11-21T23:59:60Z", "yesterday", "1732222346",
        "2026-11-21T20:52:26ZZ", "+2026-11-21T20:52:26Z"}) {
    EXPECT_FALSE(parse_utc_timestamp(bad).has_value()) << bad;
  }
}

TEST(ReplayFormat, ProgressLineOnlyWhenEnabled) {
  std::ostringstream quiet, shown;
  ProgressLine off(quiet, false);
  off.set_range(1, 100);
  off.update({50, 50});
  off.finish({100, 100});
  EXPECT_EQ(quiet.str(), "");
  ProgressLine on(shown, true);
  on.set_range(1, 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  on.update({10, 10});
  EXPECT_NE(shown.str().find("10 events"), std::string::npos) << shown.str();
  EXPECT_NE(shown.str().find("position 10 of 100 (10%)"), std::string::npos) << shown.str();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  on.update({50, 50});
  EXPECT_NE(shown.str().find("50 events"), std::string::npos) << shown.str();
  EXPECT_NE(shown.str().find("ETA 0:0"), std::string::npos) << shown.str();
  on.finish({100, 100});
  EXPECT_NE(shown.str().find("100 events in"), std::string::npos) << shown.str();
  EXPECT_EQ(shown.str().back(), '\n');
}

TEST(ReplayFormat, OutputFileAppearsOnlyWhenCommitted) {
  TempDir dir;
  const auto path = dir.file("out.jsonl");
  {
    OutputFile f(path);
    f.sink().write("half");
  }  // not committed: as if the replay failed
  EXPECT_TRUE(dir.entries().empty());
  {
    std::ofstream(path) << "old";
    OutputFile f(path);
    f.sink().write("new");
    EXPECT_EQ(read_file(path), "old");
    f.commit();
  }
  EXPECT_EQ(read_file(path), "new");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.jsonl"});
  EXPECT_THROW(OutputFile(dir.file("no/such/dir/x")), std::system_error);
}

// --- canonical jsonb text against PostgreSQL's ------------------------------------------------

class CanonicalJsonbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { url_ = new std::string(testing::create_test_database("jsonb")); }
  static void TearDownTestSuite() {
    testing::drop_test_database(*url_);
    delete url_;
  }
  static std::string* url_;
};
std::string* CanonicalJsonbTest::url_ = nullptr;

TEST_F(CanonicalJsonbTest, MatchesPostgresJsonbOutputByteForByte) {
  const std::vector<std::string> inputs = {
      "{}",
      "[]",
      "1",
      "-0",
      "-0.0",
      "0",
      "0.10",
      "1e2",
      "1E+2",
      "1.5e1",
      "1.55e1",
      "1e-2",
      "12.5e-3",
      "-1.250e3",
      "123456789012345678901234567890",
      "0.000001e6",
      "5e-1",
      "1.0e-0",
      "1e100",
      "-5E-3",
      "0e5",
      "0.00e-2",
      "9223372036854775807",
      "-9223372036854775808",
      R"("x")",
      "true",
      "false",
      "null",
      R"({"b":1,"a":2,"aa":3,"a":4})",
      "{\"\xc3\xa9\":1,\"z\":2,\"ab\":3,\"\":0}",
      R"([1,[2,[3]],{"k":[]},{}])",
      "  { \"a\" : [ 1 , 2 ] ,\n\t\"b\":{\"d\":null,\"c\":true} }\r\n",
      R"("\u00e9\ud83d\ude00\n\t\u0001\/\"\\\b\f\r")",
      R"("\u001f\u007f\u00A0")",
      "\"gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80\"",
      R"({"outer":{"z":null,"a":true,"m":[1.0,2e0]}})",
      R"({"a":{"x":1},"a":{"y":2}})",
      R"({"product_id":"9b6f","name":"Fast, \"quiet\"\nand small","price":129999,"stock":0})"};
  pqxx::connection c(*url_);
  pqxx::nontransaction tx(c);
  for (const auto& in : inputs) {
    const std::string pg = tx.exec_params("SELECT $1::jsonb::text", in)[0][0].c_str();
    std::string ours;
    EXPECT_NO_THROW(ours = canonical_jsonb(in)) << in;
    EXPECT_EQ(ours, pg) << "input: " << in;
  }
}

TEST_F(CanonicalJsonbTest, RefusesWhatJsonbRefuses) {
  const std::vector<std::string> inputs = {R"("\u0000")", R"("\ud83d")",
                                           R"("\ude00")", R"("\ud83dx")",
                                           "[1,]",        R"({"a" 1})",
                                           "01",          "1.",
                                           ".5",          "+1",
                                           "NaN",         "'x'",
                                           "\"\xff\"",    "\"\xc0\x80\"",
                                           "[1] 2",       "",
                                           "{\"a\":1",    "\"tab\there\"",
                                           "1e1001"};
  pqxx::connection c(*url_);
  pqxx::nontransaction tx(c);
  for (const auto& in : inputs) {
    EXPECT_THROW(canonical_jsonb(in), JsonError) << in;
    if (in == "1e1001") continue;  // PostgreSQL takes larger exponents; the replay need not
    EXPECT_ANY_THROW(tx.exec_params("SELECT $1::jsonb::text", in)) << in;
  }
}

// --- replay from the store ---------------------------------------------------------------------

// One appended event as the test knows it, and the position the store gave it.
struct Appended {
  std::int64_t position = 0;
  std::string stream_id;
  std::int64_t stream_version = 0;
  std::string type;
  int schema_version = 1;
  std::string occurred_at;
  std::string event_id, correlation_id, causation_id;
  std::optional<std::string> actor;
  std::string data;  // as appended (compact JSON in field order)
};

class Log {
 public:
  explicit Log(infra::EventStore& store) : store_(store) {}

  // Appends events (stream, type, data) as one transaction at `occurred_at`.
  void append(const std::vector<std::tuple<std::string, std::string, std::string>>& evs,
              const std::string& occurred_at, std::optional<std::string> actor = std::nullopt) {
    auto session = store_.begin();
    append_in(*session, evs, occurred_at, std::move(actor));
    session->commit();
  }
  void append_in(infra::StoreSession& session,
                 const std::vector<std::tuple<std::string, std::string, std::string>>& evs,
                 const std::string& occurred_at, std::optional<std::string> actor) {
    infra::Metadata meta{new_uuid(), new_uuid(), std::move(actor), occurred_at};
    std::vector<infra::StreamAppend> streams;
    for (const auto& [stream, type, data] : evs) {
      auto it = std::find_if(streams.begin(), streams.end(),
                             [&](const auto& s) { return s.stream_id == stream; });
      if (it == streams.end()) {
        streams.push_back({stream, versions_[stream], {}});
        it = streams.end() - 1;
      }
      infra::PendingEvent p{new_uuid(), type, 1, data};
      it->events.push_back(p);
      Appended a;
      a.stream_id = stream;
      a.stream_version = versions_[stream] + static_cast<std::int64_t>(it->events.size());
      a.type = type;
      a.occurred_at = occurred_at;
      a.event_id = p.event_id;
      a.correlation_id = meta.correlation_id;
      a.causation_id = meta.causation_id;
      a.actor = meta.actor;
      a.data = data;
      pending_.push_back(a);
    }
    session.append(streams, meta);
    for (const auto& s : streams)
      versions_[s.stream_id] += static_cast<std::int64_t>(s.events.size());
  }

  // Gives every appended event its position (after the appends committed).
  std::vector<Appended> resolve(const std::string& url) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    std::map<std::string, std::int64_t> positions;
    for (const auto& row : tx.exec("SELECT event_id::text, position FROM events")) {
      positions[row[0].c_str()] = row[1].as<std::int64_t>();
    }
    std::vector<Appended> out;
    for (auto a : pending_) {
      auto it = positions.find(a.event_id);
      if (it == positions.end()) continue;  // not committed (yet)
      a.position = it->second;
      out.push_back(a);
    }
    std::sort(out.begin(), out.end(),
              [](const Appended& x, const Appended& y) { return x.position < y.position; });
    return out;
  }

 private:
  infra::EventStore& store_;
  std::map<std::string, std::int64_t> versions_;
  std::vector<Appended> pending_;
};

template <class T>
std::string payload(const T& event) {
  return codec::to_json(event);
}

const std::string kUser = "5d6f7a1e-0c2b-4d3e-8f9a-1b2c3d4e5f60";
const std::string kAdmin = "a1b2c3d4-e5f6-4789-8abc-def012345678";
const std::string kCategory = "c0000000-0000-4000-8000-000000000001";
const std::string kP1 = "d0000000-0000-4000-8000-000000000001";
const std::string kP2 = "d0000000-0000-4000-8000-000000000002";
const std::string kO1 = "e0000000-0000-4000-8000-000000000001";
const std::string kO2 = "e0000000-0000-4000-8000-000000000002";
// A stream id with every character CSV must quote (the store takes any text).
const std::string kOddStream = "note-a,\"b\"\r\nc";

class ReplayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    url_ = new std::string(testing::create_test_database("replay"));
    infra::ConnectionPool pool(*url_, 2, infra::prepare_event_store);
    infra::EventStore store(pool);
    Log log(store);
    using namespace events;
    log.append({{"user-" + kUser, "UserRegistered",
                 payload(UserRegistered{kUser, "ann@example.com", "Ann", {"customer"}})}},
               "1999-12-31T23:59:59.999999Z");
    log.append({{"category-" + kCategory, "CategoryCreated",
                 payload(CategoryCreated{kCategory, "Laptops", std::nullopt})}},
               "2026-03-01T09:00:00.000001Z", kAdmin);
    log.append(
        {{"product-" + kP1, "ProductCreated",
          payload(ProductCreated{kP1, "Ultrabook 13",
                                 "Fast, \"quiet\"\nand\tsmall: gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80",
                                 "UB-13", kCategory, 129999, 10})}},
        "2026-03-01T09:05:00.250000Z", kAdmin);
    log.append({{"product-" + kP2, "ProductCreated",
                 payload(ProductCreated{kP2, "Mouse", "", "M-1", kCategory, 1999, 100})}},
               "2026-03-01T09:10:00.000000Z", kAdmin);
    log.append({{"product-" + kP1, "StockAdjusted", payload(StockAdjusted{kP1, 5, 15})}},
               "2026-03-01T09:15:00.000000Z", kAdmin);
    log.append({{"cart-" + kUser, "CartItemAdded",
                 payload(CartItemAdded{kUser, kP1, "Ultrabook 13", 129999, 1, 1})}},
               "2026-03-02T10:00:00.000000Z", kUser);
    log.append({{"cart-" + kUser, "CartItemAdded",
                 payload(CartItemAdded{kUser, kP2, "Mouse", 1999, 2, 2})}},
               "2026-03-02T10:01:00.000000Z", kUser);
    log.append({{"cart-" + kUser, "CartItemRemoved", payload(CartItemRemoved{kUser, kP2})}},
               "2026-03-02T10:02:00.000000Z", kUser);
    log.append({{"order-" + kO1, "OrderPlaced",
                 payload(OrderPlaced{kO1,
                                     "SO-100001",
                                     kUser,
                                     "USD",
                                     {OrderLine{kP1, "Ultrabook 13", 129999, 1, 129999}},
                                     129999})},
                {"product-" + kP1, "StockReserved", payload(StockReserved{kP1, kO1, 1, 14})},
                {"cart-" + kUser, "CartCheckedOut", payload(CartCheckedOut{kUser, kO1})}},
               "2026-03-02T10:05:00.000000Z", kUser);
    log.append({{"order-" + kO1, "OrderPaid", payload(OrderPaid{kO1, kO2, 129999})}},
               "2026-03-02T10:06:00.000000Z", kUser);
    log.append(
        {{"order-" + kO2, "OrderPlaced",
          payload(OrderPlaced{
              kO2, "SO-100002", kUser, "USD", {OrderLine{kP2, "Mouse", 1999, 3, 5997}}, 5997})},
         {"product-" + kP2, "StockReserved", payload(StockReserved{kP2, kO2, 3, 97})}},
        "2026-03-03T08:00:00.000000Z", kUser);
    log.append({{"order-" + kO2, "OrderCancelled", payload(OrderCancelled{kO2, "changed mind"})},
                {"product-" + kP2, "StockReleased", payload(StockReleased{kP2, kO2, 3, 100})}},
               "2026-03-03T08:30:00.000000Z", kUser);
    log.append({{kOddStream, "NoteTaken", R"({"text":"a, \"b\"\nc"})"}},
               "2026-03-04T00:00:00.000000Z");
    appended_ = new std::vector<Appended>(log.resolve(*url_));
    wait_until_replay_is_complete();
  }
  static void TearDownTestSuite() {
    testing::drop_test_database(*url_);
    delete url_;
    delete appended_;
  }

  // Waits until a replay holds every appended event: the horizon is the whole cluster's, and
  // another test's transaction in another database may hold it below our last events for a
  // moment (it never makes a replay skip). The horizon only moves forward, so every later
  // replay is complete too.
  static void wait_until_replay_is_complete() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto run = shopctl({"replay"}, *url_);
      if (run.code == 0 && split_lines(run.out).size() == appended_->size()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the replay never caught up with the appended events";
  }

  static CliRun replay(std::vector<std::string> args) {
    args.insert(args.begin(), "replay");
    return shopctl(args, *url_);
  }

  static std::vector<std::int64_t> positions_of_jsonl(const std::string& out) {
    std::vector<std::int64_t> positions;
    for (const auto& line : split_lines(out)) {
      json::Document doc;
      EXPECT_EQ(json::parse(line, doc), "") << line;
      if (doc.IsObject() && doc.HasMember("position") && doc["position"].IsInt64()) {
        positions.push_back(doc["position"].GetInt64());
      }
    }
    return positions;
  }

  template <class Pred>
  static std::vector<std::int64_t> expected(Pred keep) {
    std::vector<std::int64_t> out;
    for (const auto& a : *appended_) {
      if (keep(a)) out.push_back(a.position);
    }
    return out;
  }

  static std::string* url_;
  static std::vector<Appended>* appended_;
};
std::string* ReplayTest::url_ = nullptr;
std::vector<Appended>* ReplayTest::appended_ = nullptr;

TEST_F(ReplayTest, JsonLinesAreTheAppendedEventsExactly) {
  ASSERT_EQ(appended_->size(), 17u);
  const auto run = replay({});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.err, "") << "nothing but records when stderr is not a terminal";
  const auto lines = split_lines(run.out);
  ASSERT_EQ(lines.size(), appended_->size());

  pqxx::connection c(*url_);
  pqxx::nontransaction tx(c);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Appended& a = (*appended_)[i];
    SCOPED_TRACE(lines[i]);
    json::Document doc;
    ASSERT_EQ(json::parse(lines[i], doc), "");
    ASSERT_TRUE(doc.IsObject());
    std::vector<std::string> keys;
    for (const auto& m : doc.GetObject()) keys.emplace_back(m.name.GetString());
    EXPECT_EQ(keys, kEnvelopeFields);
    ASSERT_TRUE(doc["position"].IsInt64());
    EXPECT_EQ(doc["position"].GetInt64(), a.position);
    EXPECT_EQ(json::get_string(doc, "stream_id"), a.stream_id);
    ASSERT_TRUE(doc["stream_version"].IsInt64());
    EXPECT_EQ(doc["stream_version"].GetInt64(), a.stream_version);
    EXPECT_EQ(json::get_string(doc, "type"), a.type);
    ASSERT_TRUE(doc["schema_version"].IsInt());
    EXPECT_EQ(doc["schema_version"].GetInt(), a.schema_version);
    EXPECT_EQ(json::get_string(doc, "occurred_at"), a.occurred_at);
    EXPECT_EQ(json::get_string(doc, "event_id"), a.event_id);
    EXPECT_EQ(json::get_string(doc, "correlation_id"), a.correlation_id);
    EXPECT_EQ(json::get_string(doc, "causation_id"), a.causation_id);
    if (a.actor) {
      EXPECT_EQ(json::get_string(doc, "actor"), *a.actor);
    } else {
      EXPECT_TRUE(doc["actor"].IsNull());
    }
    json::Document data;
    ASSERT_EQ(json::parse(a.data, data), "");
    EXPECT_TRUE(doc["data"] == data) << "the payload as appended";

    // Byte for byte: the payload is PostgreSQL's jsonb text, which canonical_jsonb reproduces
    // from the appended JSON, and the whole line is the envelope of the stored row.
    const auto row = tx.exec_params(
        std::string("SELECT ") + infra::kEventColumns + " FROM events WHERE position = $1",
        a.position)[0];
    const auto stored = infra::event_from_row(row);
    EXPECT_EQ(canonical_jsonb(a.data), stored.data);
    Envelope e{stored.position,
               stored.stream_id,
               stored.stream_version,
               stored.type,
               stored.schema_version,
               stored.occurred_at,
               stored.event_id,
               stored.correlation_id,
               stored.causation_id,
               std::nullopt,
               stored.data};
    if (stored.actor) e.actor = *stored.actor;
    std::string want;
    append_json_line(want, e);
    EXPECT_EQ(lines[i] + "\n", want);
  }
}

TEST_F(ReplayTest, StdoutAndOutputFileHoldTheSameBytes) {
  const auto to_stdout = replay({});
  TempDir dir;
  const auto path = dir.file("events.jsonl");
  const auto to_file = replay({"--output", path});
  ASSERT_EQ(to_file.code, 0) << to_file.err;
  EXPECT_EQ(to_file.out, "");
  EXPECT_EQ(read_file(path), to_stdout.out);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"events.jsonl"});
}

TEST_F(ReplayTest, CsvHasAHeaderAndQuotesWhatNeedsIt) {
  const auto run = replay({"--format", "csv"});
  ASSERT_EQ(run.code, 0) << run.err;
  const auto rows = parse_csv(run.out);
  ASSERT_EQ(rows.size(), appended_->size() + 1);
  EXPECT_EQ(rows[0], kEnvelopeFields);
  const auto json_lines = split_lines(replay({}).out);
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const Appended& a = (*appended_)[i - 1];
    ASSERT_EQ(rows[i].size(), 11u);
    EXPECT_EQ(rows[i][0], std::to_string(a.position));
    EXPECT_EQ(rows[i][1], a.stream_id);
    EXPECT_EQ(rows[i][2], std::to_string(a.stream_version));
    EXPECT_EQ(rows[i][3], a.type);
    EXPECT_EQ(rows[i][4], "1");
    EXPECT_EQ(rows[i][5], a.occurred_at);
    EXPECT_EQ(rows[i][6], a.event_id);
    EXPECT_EQ(rows[i][7], a.correlation_id);
    EXPECT_EQ(rows[i][8], a.causation_id);
    EXPECT_EQ(rows[i][9], a.actor.value_or(""));
    EXPECT_EQ(rows[i][10], canonical_jsonb(a.data));
    // The data column holds the same text as the JSON line's data.
    const std::string& line = json_lines[i - 1];
    const auto at = line.find(",\"data\":") + 8;
    EXPECT_EQ(rows[i][10], line.substr(at, line.size() - at - 1));
  }
  // The odd stream id went out quoted, with its quotes doubled and its CR LF inside the quotes.
  EXPECT_NE(run.out.find(",\"note-a,\"\"b\"\"\r\nc\","), std::string::npos);
  // A payload with a comma and quotes: the field is quoted and its quotes doubled.
  EXPECT_NE(run.out.find(R"("{""text"": ""a, \""b\""\nc""}")"), std::string::npos);
}

// The server sends one row per CopyData message; a stream cut anywhere else (as a proxy or
// another server version might) decodes to the same records.
TEST_F(ReplayTest, CopyStreamCutAnywhereDecodesTheSame) {
  std::string stream;  // the whole binary COPY, as the replay's query gives it
  {
    PGconn* c = PQconnectdb(url_->c_str());
    ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    PGresult* r = PQexec(c,
                         "COPY (SELECT position, stream_id, stream_version, type, schema_version, "
                         "occurred_at, event_id, correlation_id, causation_id, actor, data "
                         "FROM events ORDER BY position) TO STDOUT (FORMAT binary)");
    ASSERT_EQ(PQresultStatus(r), PGRES_COPY_OUT);
    PQclear(r);
    char* buf = nullptr;
    int n = 0;
    while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
      stream.append(buf, static_cast<std::size_t>(n));
      PQfreemem(buf);
    }
    while (PGresult* rest = PQgetResult(c)) PQclear(rest);
    PQfinish(c);
  }
  const auto expected = replay({"--format", "csv"}).out;
  for (std::size_t piece : {stream.size(), std::size_t{1}, std::size_t{7}, std::size_t{19},
                            std::size_t{100}, std::size_t{4096}}) {
    StringSink sink;
    sink.write(preamble(Format::kCsv));
    CopyDecoder decoder(Format::kCsv, sink, nullptr);
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      decoder.feed(stream.data() + at, std::min(piece, stream.size() - at));
    }
    decoder.finish();
    EXPECT_EQ(decoder.events(), static_cast<std::int64_t>(appended_->size()));
    EXPECT_EQ(sink.data, expected) << "pieces of " << piece << " bytes";
  }
  // A stream that stops before its trailer is an error, not a short replay.
  StringSink sink;
  CopyDecoder cut(Format::kJsonLines, sink, nullptr);
  cut.feed(stream.data(), stream.size() - 2);
  EXPECT_THROW(cut.finish(), std::runtime_error);
  CopyDecoder garbage(Format::kJsonLines, sink, nullptr);
  EXPECT_THROW(garbage.feed("PGCOPY but not really", 21), std::runtime_error);
}

TEST_F(ReplayTest, EveryFilter) {
  const auto& all = *appended_;
  auto pos = [&](std::size_t i) { return std::to_string(all[i].position); };
  struct Case {
    std::vector<std::string> args;
    std::function<bool(const Appended&)> keep;
  };
  const std::vector<Case> cases = {
      {{}, [](const Appended&) { return true; }},
      {{"--from-position", pos(3)},
       [&](const Appended& a) { return a.position >= all[3].position; }},
      {{"--to-position", pos(5)}, [&](const Appended& a) { return a.position <= all[5].position; }},
      {{"--from-position", pos(3), "--to-position", pos(8)},
       [&](const Appended& a) {
         return a.position >= all[3].position && a.position <= all[8].position;
       }},
      {{"--from-position", pos(4), "--to-position", pos(4)},
       [&](const Appended& a) { return a.position == all[4].position; }},
      // --since is inclusive, --until exclusive.
      {{"--since", "2026-03-01T09:05:00.25Z"},
       [](const Appended& a) { return a.occurred_at >= "2026-03-01T09:05:00.250000Z"; }},
      {{"--until", "2026-03-02T10:05:00Z"},
       [](const Appended& a) { return a.occurred_at < "2026-03-02T10:05:00.000000Z"; }},
      {{"--since", "2026-03-02T10:01:00+00:00", "--until", "2026-03-03T08:00:00.000000Z"},
       [](const Appended& a) {
         return a.occurred_at >= "2026-03-02T10:01:00.000000Z" &&
                a.occurred_at < "2026-03-03T08:00:00.000000Z";
       }},
      {{"--until", "2000-01-01T00:00:00Z"},
       [](const Appended& a) { return a.occurred_at < "2000"; }},
      {{"--stream", "product-" + kP1},
       [](const Appended& a) { return a.stream_id == "product-" + kP1; }},
      {{"--stream", "product-" + kP1, "--stream", "order-" + kO2},
       [](const Appended& a) {
         return a.stream_id == "product-" + kP1 || a.stream_id == "order-" + kO2;
       }},
      {{"--stream", "order-" + kO1 + ",cart-" + kUser},
       [](const Appended& a) {
         return a.stream_id == "order-" + kO1 || a.stream_id == "cart-" + kUser;
       }},
      {{"--stream", "order-00000000-0000-4000-8000-000000000000"},
       [](const Appended&) { return false; }},
      {{"--category", "order"},
       [](const Appended& a) { return events::category_of(a.stream_id) == "order"; }},
      {{"--category", "cart", "--category", "user"},
       [](const Appended& a) {
         return events::category_of(a.stream_id) == "cart" ||
                events::category_of(a.stream_id) == "user";
       }},
      {{"--category", "note"}, [](const Appended& a) { return a.stream_id == kOddStream; }},
      {{"--category", "ord"}, [](const Appended&) { return false; }},
      {{"--type", "OrderPlaced"}, [](const Appended& a) { return a.type == "OrderPlaced"; }},
      {{"--type", "StockReserved", "--type", "StockReleased"},
       [](const Appended& a) { return a.type == "StockReserved" || a.type == "StockReleased"; }},
      {{"--type", "OrderPlaced,OrderCancelled"},
       [](const Appended& a) { return a.type == "OrderPlaced" || a.type == "OrderCancelled"; }},
      {{"--type", "OrderDelivered"}, [](const Appended&) { return false; }},
      {{"--category", "product", "--type", "StockReserved,StockReleased", "--since",
        "2026-03-03T00:00:00Z"},
       [](const Appended& a) {
         return events::category_of(a.stream_id) == "product" &&
                (a.type == "StockReserved" || a.type == "StockReleased") &&
                a.occurred_at >= "2026-03-03";
       }},
      {{"--stream", "cart-" + kUser, "--type", "CartItemAdded", "--to-position", pos(6)},
       [&](const Appended& a) {
         return a.stream_id == "cart-" + kUser && a.type == "CartItemAdded" &&
                a.position <= all[6].position;
       }},
  };
  for (const auto& c : cases) {
    std::string label;
    for (const auto& a : c.args) label += a + " ";
    SCOPED_TRACE(label);
    const auto run = replay(c.args);
    ASSERT_EQ(run.code, 0) << run.err;
    const auto want = expected(c.keep);
    EXPECT_EQ(positions_of_jsonl(run.out), want);
    // The same filter as CSV selects the same events.
    auto csv_args = c.args;
    csv_args.insert(csv_args.end(), {"--format", "csv"});
    const auto csv = replay(csv_args);
    ASSERT_EQ(csv.code, 0) << csv.err;
    const auto rows = parse_csv(csv.out);
    ASSERT_EQ(rows.size(), want.size() + 1);
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(rows[i + 1][0], std::to_string(want[i]));
    }
  }
}

TEST_F(ReplayTest, BadArgumentsAreUsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {"replay", "--since", "2026-03-01"},
      {"replay", "--since", "2026-03-01T09:00:00+02:00"},
      {"replay", "--until", "2026-03-01T09:00:00"},
      {"replay", "--since", ""},
      {"replay", "--until", "2026-03-01T09:00:00.1234567Z"},
      {"replay", "--since", "2026-03-02T00:00:00Z", "--until", "2026-03-01T00:00:00Z"},
      {"replay", "--from-position", "9", "--to-position", "3"},
      {"replay", "--from-position", "-1"},
      {"replay", "--from-position", "abc"},
      {"replay", "--format", "xml"},
      {"replay", "--type", "NoSuchThing"},
      {"replay", "--category", "order-1"},
      {"replay", "--category", ""},
      {"replay", "--stream", ""},
      {"replay", "--type", "OrderPlaced", "OrderPaid"},
      {"replay", "--bogus"},
      {"schemas", "NoSuchThing"},
      {},
  };
  for (const auto& args : bad) {
    std::string label;
    for (const auto& a : args) label += a + " ";
    const auto run = shopctl(args, *url_);
    EXPECT_EQ(run.code, tools::kExitUsage) << label << run.err;
    EXPECT_FALSE(run.err.empty()) << label;
    EXPECT_EQ(run.out.find("{\"position\""), std::string::npos) << label;
  }
  const auto since = shopctl({"replay", "--since", "yesterday"}, *url_);
  EXPECT_NE(since.err.find("--since wants an RFC 3339 UTC timestamp"), std::string::npos)
      << since.err;
  const auto type = shopctl({"replay", "--type", "OrderPlacd"}, *url_);
  EXPECT_NE(type.err.find("unknown event type OrderPlacd; known types: CartCheckedOut"),
            std::string::npos)
      << type.err;
  const auto help = shopctl({"replay", "--help"}, *url_);
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("events committed before the replay started"), std::string::npos)
      << help.out;
}

TEST_F(ReplayTest, UnreachableDatabaseFailsCleanlyAndLeavesNoFile) {
  TempDir dir;
  const auto path = dir.file("events.jsonl");
  const auto run = shopctl({"replay", "--output", path},
                           "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
  EXPECT_EQ(run.code, tools::kExitFailure);
  EXPECT_NE(run.err.find("error: cannot connect to the database"), std::string::npos) << run.err;
  EXPECT_TRUE(dir.entries().empty());

  const auto no_url = [] {
    std::ostringstream text, err;
    tools::Console console{-1, &text, &err, false};
    const int code =
        tools::run_analyst_command_line({"replay"}, infra::Config::from_map({}), console);
    return std::pair{code, err.str()};
  }();
  EXPECT_EQ(no_url.first, tools::kExitFailure);
  EXPECT_NE(no_url.second.find("DATABASE_URL"), std::string::npos) << no_url.second;

  const auto bad_output = shopctl({"replay", "--output", dir.file("missing/dir/x.jsonl")}, *url_);
  EXPECT_EQ(bad_output.code, tools::kExitFailure);
  EXPECT_NE(bad_output.err.find("error: "), std::string::npos);
}

TEST_F(ReplayTest, ProgressLineGoesToATerminalOnly) {
  const auto run = shopctl({"replay"}, *url_, /*err_is_terminal=*/true);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.err.find(" events in "), std::string::npos) << run.err;
  EXPECT_EQ(run.out.find("replay:"), std::string::npos);
}

// The schema catalogue: shopctl schemas and GET /api/schemas/events give the same document.
TEST_F(ReplayTest, SchemasListEveryEventTypeAsTheQueryApiServesThem) {
  const auto list = shopctl({"schemas"}, *url_);
  ASSERT_EQ(list.code, 0) << list.err;
  for (const auto type : events::all_types()) {
    EXPECT_NE(list.out.find(std::string(type) + " "), std::string::npos) << type;
  }
  const auto one = shopctl({"schemas", "OrderPlaced"}, *url_);
  ASSERT_EQ(one.code, 0);
  json::Document schema;
  ASSERT_EQ(json::parse(one.out, schema), "");
  EXPECT_EQ(json::get_string(schema, "title"), "OrderPlaced");

  const auto doc_run = shopctl({"schemas", "--json"}, *url_);
  ASSERT_EQ(doc_run.code, 0);
  json::Document doc;
  ASSERT_EQ(json::parse(doc_run.out, doc), "");
  ASSERT_EQ(doc["items"].Size(), events::all_types().size());

  infra::crypto_init();
  query::Options o;
  o.database_url = *url_;
  o.jwt_secret = std::string(40, 's');
  o.threads = 1;
  const SystemClock clock;
  query::QueryApp app(o, clock);
  http::Request req;
  req.method = "GET";
  req.target = "/api/schemas/events";
  const auto res =
      http::dispatch([&](http::Request& r) { return app.handle(r); }, req, app.server_options());
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.body + "\n", doc_run.out);
  EXPECT_EQ(tools::event_schemas_json(), res.body);
  const auto filtered = shopctl({"schemas", "--json", "OrderPaid", "CartCheckedOut"}, *url_);
  json::Document two;
  ASSERT_EQ(json::parse(filtered.out, two), "");
  ASSERT_EQ(two["items"].Size(), 2u);
  EXPECT_EQ(json::get_string(two["items"][0], "type"), "CartCheckedOut");
}

// --- the horizon ---------------------------------------------------------------------------------

class ReplayHorizonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::create_test_database("replay_horizon");
    pool_ = std::make_unique<infra::ConnectionPool>(url_, 4, infra::prepare_event_store);
    store_ = std::make_unique<infra::EventStore>(*pool_);
    log_ = std::make_unique<Log>(*store_);
  }
  void TearDown() override {
    log_.reset();
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  void append(const std::string& stream, const std::string& at) {
    log_->append({{stream, "OrderDelivered", R"({"order_id":"x"})"}}, at);
  }

  struct Replayed {
    std::vector<std::int64_t> positions;
    std::string horizon;
    std::vector<std::int64_t> below_horizon;  // what the table holds below that horizon
  };
  Replayed replay_once() {
    StringSink sink;
    const auto stats = replay_from_store(url_, {}, Format::kJsonLines, sink);
    Replayed r;
    r.horizon = stats.horizon;
    for (const auto& line : split_lines(sink.data)) {
      json::Document doc;
      EXPECT_EQ(json::parse(line, doc), "");
      r.positions.push_back(doc["position"].GetInt64());
    }
    EXPECT_EQ(stats.events, static_cast<std::int64_t>(r.positions.size()));
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    for (const auto& row : tx.exec_params(
             "SELECT position FROM events WHERE tx_id < $1::xid8 ORDER BY position", r.horizon)) {
      r.below_horizon.push_back(row[0].as<std::int64_t>());
    }
    return r;
  }
  // Replays until `done` holds (another database's transaction on the cluster may hold the
  // horizon back for a while), checking every time that the output is exactly what lies below
  // the horizon the replay took.
  template <class Pred>
  Replayed replay_until(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      Replayed r = replay_once();
      EXPECT_EQ(r.positions, r.below_horizon) << "horizon " << r.horizon;
      if (done(r) || std::chrono::steady_clock::now() > deadline) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  static bool has(const std::vector<std::int64_t>& v, std::int64_t p) {
    return std::find(v.begin(), v.end(), p) != v.end();
  }

  std::string url_;
  std::unique_ptr<infra::ConnectionPool> pool_;
  std::unique_ptr<infra::EventStore> store_;
  std::unique_ptr<Log> log_;
};

// An append held open: it is not printed; it does not hold back the events committed before it
// began; it does stop the horizon below itself, so the events committed after it began are not
// printed either (though committed), and what is printed is exactly the events below the horizon.
// Once it commits, its event comes out at its own (lower) position, in order.
TEST_F(ReplayHorizonTest, PrintsExactlyTheEventsBelowTheHorizon) {
  append("order-before-1", "2026-01-01T00:00:00.000000Z");
  append("order-before-2", "2026-01-01T00:00:01.000000Z");
  const auto before = log_->resolve(url_);
  ASSERT_EQ(before.size(), 2u);

  auto held = store_->begin();
  log_->append_in(*held, {{"order-held", "OrderDelivered", R"({"order_id":"held"})"}},
                  "2026-01-01T00:00:02.000000Z", std::nullopt);
  std::string held_tx;
  {
    // The held transaction's id, as the store recorded it (visible to that transaction only).
    held_tx = held->tx().exec("SELECT pg_current_xact_id()::text")[0][0].c_str();
  }
  append("order-after-1", "2026-01-01T00:00:03.000000Z");
  append("order-after-2", "2026-01-01T00:00:04.000000Z");
  const auto committed = log_->resolve(url_);
  ASSERT_EQ(committed.size(), 4u);
  const std::int64_t after1 = committed[2].position, after2 = committed[3].position;

  const auto r = replay_until([&](const Replayed& x) {
    return has(x.positions, before[0].position) && has(x.positions, before[1].position);
  });
  EXPECT_TRUE(has(r.positions, before[0].position)) << "held back by an open append";
  EXPECT_TRUE(has(r.positions, before[1].position));
  EXPECT_LE(std::stoull(r.horizon), std::stoull(held_tx)) << "the open append bounds the horizon";
  EXPECT_FALSE(has(r.positions, after1)) << "committed after the open append began";
  EXPECT_FALSE(has(r.positions, after2));
  EXPECT_EQ(r.positions, (std::vector<std::int64_t>{before[0].position, before[1].position}));

  held->commit();
  held.reset();
  const auto all = log_->resolve(url_);
  ASSERT_EQ(all.size(), 5u);
  std::int64_t held_position = 0;
  for (const auto& a : all) {
    if (a.stream_id == "order-held") held_position = a.position;
  }
  EXPECT_LT(held_position, after1);
  const auto r2 = replay_until([&](const Replayed& x) { return x.positions.size() == 5; });
  std::vector<std::int64_t> want;
  for (const auto& a : all) want.push_back(a.position);
  EXPECT_EQ(r2.positions, want) << "every event, in position order, the late one in its place";
}

// A rolled-back append leaves a gap in the positions and nothing to wait for.
TEST_F(ReplayHorizonTest, RolledBackAppendLeavesAGapAndNoWait) {
  append("order-a", "2026-01-01T00:00:00.000000Z");
  {
    auto s = store_->begin();
    log_->append_in(*s, {{"order-gone", "OrderDelivered", R"({"order_id":"gone"})"}},
                    "2026-01-01T00:00:01.000000Z", std::nullopt);
  }  // rolled back
  append("order-b", "2026-01-01T00:00:02.000000Z");
  const auto all = log_->resolve(url_);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_GT(all[1].position, all[0].position + 1) << "the rolled-back insert took a position";
  const auto r = replay_until([](const Replayed& x) { return x.positions.size() == 2; });
  EXPECT_EQ(r.positions, (std::vector<std::int64_t>{all[0].position, all[1].position}));
}

}  // namespace
}  // namespace shop::replay

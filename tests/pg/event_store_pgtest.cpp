// The event store against a real PostgreSQL: expected versions, atomic multi-stream appends,
// unique claims, and the global-order reader that must never skip and never stall.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <thread>

#include "shop/events/types.h"
#include "shop/infra/event_store.h"
#include "support/pg_fixture.h"

namespace shop::infra {
namespace {

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::create_test_database("event_store");
    pool_ = std::make_unique<ConnectionPool>(url_, 8, prepare_event_store);
    store_ = std::make_unique<EventStore>(*pool_);
  }
  void TearDown() override {
    store_.reset();
    pool_.reset();
    testing::drop_test_database(url_);
  }

  static PendingEvent event(const std::string& data = R"({"n":1})") {
    return {new_uuid(), "TestHappened", 1, data};
  }
  static Metadata meta() {
    return {new_uuid(), new_uuid(), std::nullopt, format_time(SystemClock().now())};
  }
  AppendResult append(const std::string& stream, std::int64_t expected, int n = 1) {
    auto s = store_->begin();
    std::vector<PendingEvent> evs;
    for (int i = 0; i < n; ++i) evs.push_back(event());
    auto r = s->append({{stream, expected, evs}}, meta());
    s->commit();
    return r;
  }

  // Reads everything currently readable after `cp`, advancing it.
  std::vector<RecordedEvent> read_all(GlobalCheckpoint& cp) {
    std::vector<RecordedEvent> out;
    pqxx::connection c(url_);
    for (;;) {
      pqxx::work tx(c);
      auto batch = read_global(tx, cp, 100);
      tx.commit();
      if (batch.events.empty()) return out;
      {
        std::lock_guard lock(trace_mutex_);
        trace_.push_back("(" + cp.tx + "," + std::to_string(cp.position) + ") -> (" +
                         batch.next.tx + "," + std::to_string(batch.next.position) + ") " +
                         std::to_string(batch.events.size()) + " events:" + positions(batch.events));
      }
      for (auto& e : batch.events) out.push_back(std::move(e));
      cp = batch.next;
    }
  }
  static std::string positions(const std::vector<RecordedEvent>& evs) {
    std::string s;
    for (const auto& e : evs) s += " " + std::to_string(e.position);
    return s;
  }
  std::mutex trace_mutex_;
  std::vector<std::string> trace_;

  // Reads until `done(all read so far)` holds. Readers only see what every running transaction
  // of the whole cluster (other tests' databases included) leaves final, so a read may lag;
  // it must never miss anything, which the callers check.
  template <class Pred>
  std::vector<RecordedEvent> read_until(GlobalCheckpoint& cp, Pred done) {
    std::vector<RecordedEvent> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done(out) && std::chrono::steady_clock::now() < deadline) {
      auto more = read_all(cp);
      out.insert(out.end(), more.begin(), more.end());
      if (more.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return out;
  }
  static bool has(const std::vector<RecordedEvent>& evs, std::int64_t position) {
    for (const auto& e : evs) {
      if (e.position == position) return true;
    }
    return false;
  }

  std::string url_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<EventStore> store_;
};

TEST_F(EventStoreTest, AppendsAndReadsAStreamInOrder) {
  auto r1 = append("order-1", kNoStream, 2);
  auto r2 = append("order-1", 2, 1);
  EXPECT_EQ(r1.versions.at("order-1"), 2);
  EXPECT_EQ(r2.versions.at("order-1"), 3);
  EXPECT_LT(r1.last_position, r2.last_position);
  auto s = store_->begin();
  auto evs = s->read_stream("order-1");
  ASSERT_EQ(evs.size(), 3u);
  for (std::size_t i = 0; i < evs.size(); ++i) {
    EXPECT_EQ(evs[i].stream_version, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(evs[i].type, "TestHappened");
    EXPECT_TRUE(is_uuid(evs[i].event_id));
    EXPECT_EQ(evs[i].occurred_at.back(), 'Z');
  }
  EXPECT_EQ(s->read_stream("order-1", 2).size(), 1u);
  EXPECT_EQ(s->stream_version("order-1"), 3);
  EXPECT_EQ(s->stream_version("order-404"), 0);
}

TEST_F(EventStoreTest, WrongExpectedVersionIsAConflict) {
  append("cart-1", kNoStream);
  EXPECT_THROW(append("cart-1", kNoStream), ConcurrencyConflict);  // exists already
  EXPECT_THROW(append("cart-1", 5), ConcurrencyConflict);          // ahead of the stream
  EXPECT_THROW(append("cart-2", 1), ConcurrencyConflict);          // does not exist
  EXPECT_NO_THROW(append("cart-1", 1));
}

TEST_F(EventStoreTest, MultiStreamAppendIsAllOrNothing) {
  append("product-a", kNoStream);
  append("product-b", kNoStream);
  {
    auto s = store_->begin();
    // product-b's expected version is stale: nothing of the three streams may be written.
    EXPECT_THROW(s->append({{"order-x", kNoStream, {event()}},
                            {"product-a", 1, {event()}},
                            {"product-b", 0, {event()}}},
                           meta()),
                 ConcurrencyConflict);
  }
  auto s = store_->begin();
  EXPECT_EQ(s->stream_version("order-x"), 0);
  EXPECT_EQ(s->stream_version("product-a"), 1);
  EXPECT_EQ(s->read_stream("product-a").size(), 1u);
  auto ok = s->append({{"order-x", kNoStream, {event()}},
                       {"product-a", 1, {event()}},
                       {"product-b", 1, {event()}}},
                      meta());
  s->commit();
  EXPECT_EQ(ok.versions.size(), 3u);
  EXPECT_EQ(ok.positions.at("product-b"), ok.last_position);
}

TEST_F(EventStoreTest, UniqueClaimsAreExclusive) {
  {
    auto s = store_->begin();
    s->claim_unique("email", "a@example.com", "u1");
    s->commit();
  }
  auto s = store_->begin();
  EXPECT_THROW(s->claim_unique("email", "a@example.com", "u2"), UniqueClaimTaken);
  // The session stays usable after a refused claim.
  EXPECT_EQ(s->unique_owner("email", "a@example.com").value_or(""), "u1");
  s->claim_unique("sku", "a@example.com", "p1");  // another scope
  s->release_unique("email", "a@example.com", "u1");
  s->claim_unique("email", "a@example.com", "u2");
  s->commit();
}

TEST_F(EventStoreTest, ReaderNeitherSkipsALateCommitNorStallsOnARollback) {
  for (const bool commit_late : {true, false}) {
    SCOPED_TRACE(commit_late ? "late commit" : "rollback");
    GlobalCheckpoint cp;
    auto before = read_all(cp);
    append("s-" + new_uuid(), kNoStream);
    // T1 appends first and stays open...
    auto slow = store_->begin();
    const std::string slow_stream = "s-" + new_uuid();
    slow->append({{slow_stream, kNoStream, {event()}}}, meta());
    // ...while T2 and T3 append after it and commit.
    auto r2 = append("s-" + new_uuid(), kNoStream);
    auto r3 = append("s-" + new_uuid(), kNoStream);
    auto seen = read_all(cp);
    // Nothing at or after T1 may be passed while T1 can still commit.
    for (const auto& e : seen) {
      EXPECT_NE(e.position, r2.last_position);
      EXPECT_NE(e.position, r3.last_position);
    }
    if (commit_late) {
      slow->commit();
    } else {
      slow.reset();  // rolls back
    }
    auto rest = read_until(cp, [&](const auto& evs) {
      return (has(evs, r2.last_position) || has(seen, r2.last_position)) &&
             (has(evs, r3.last_position) || has(seen, r3.last_position));
    });
    if (commit_late) {
      // The late transaction's event comes with or after the others; wait for it too.
      auto late = read_until(cp, [&](const auto& evs) {
        for (const auto& e : evs) {
          if (e.stream_id == slow_stream) return true;
        }
        for (const auto& e : rest) {
          if (e.stream_id == slow_stream) return true;
        }
        return false;
      });
      rest.insert(rest.end(), late.begin(), late.end());
    }
    std::set<std::int64_t> positions;
    for (const auto& e : seen) positions.insert(e.position);
    for (const auto& e : rest) EXPECT_TRUE(positions.insert(e.position).second) << "read twice";
    EXPECT_TRUE(positions.count(r2.last_position));
    EXPECT_TRUE(positions.count(r3.last_position));
    bool slow_seen = false;
    for (const auto& e : rest) slow_seen |= e.stream_id == slow_stream;
    EXPECT_EQ(slow_seen, commit_late);
    // And the reader has not stalled: a new event is read.
    auto fresh = append("s-" + new_uuid(), kNoStream);
    auto next = read_until(cp, [&](const auto& evs) { return has(evs, fresh.last_position); });
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].position, fresh.last_position);
  }
}

// A writer that queued for a stream's lock while holding another one must still come after the
// writer it waited for, in the global order every reader follows.
TEST_F(EventStoreTest, StreamOrderHoldsInTheGlobalOrder) {
  append("product-p", kNoStream);
  auto a = store_->begin();
  a->lock_stream("product-p");  // A holds the product...
  std::atomic<bool> b_waiting{false};
  std::thread b_thread([&] {
    auto b = store_->begin();
    b->lock_stream("cart-b");  // ...B takes its cart first (with row locks this gave B an id)
    b_waiting = true;
    b->lock_stream("product-p");  // and queues behind A
    b->append({{"product-p", 2, {event(R"({"by":"b"})")}}, {"cart-b", kNoStream, {event()}}},
              meta());
    b->commit();
  });
  while (!b_waiting.load()) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  a->append({{"product-p", 1, {event(R"({"by":"a"})")}}}, meta());
  a->commit();
  b_thread.join();
  GlobalCheckpoint cp;
  std::vector<std::int64_t> versions;
  auto evs = read_until(cp, [](const auto& got) { return got.size() >= 4; });
  for (const auto& e : evs) {
    if (e.stream_id == "product-p") versions.push_back(e.stream_version);
  }
  EXPECT_EQ(versions, (std::vector<std::int64_t>{1, 2, 3}));
}

// Transaction ids order the global log. A batch whose ids change their number of digits
// (99 -> 100, 999 -> 1000, ...) must still come out in numeric order: sorted as text, "1000"
// comes before "999", the batch's last event is not its newest one, and the next batch reads
// events again. Events are stored here under ids just around every power of ten below the
// cluster's running transactions (so the reader may read them all), appended in shuffled order
// so that positions and transaction ids disagree, and read back in batches of several sizes.
TEST_F(EventStoreTest, GlobalOrderIsNumericAcrossEveryPowerOfTenInTransactionIds) {
  pqxx::connection c(url_);
  std::uint64_t horizon = 0;
  {
    pqxx::work tx(c);
    horizon =
        tx.exec("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0][0].as<std::uint64_t>();
  }
  std::vector<std::uint64_t> tx_ids;
  for (std::uint64_t p = 100; p + 2 < horizon; p *= 10) {
    for (std::uint64_t id = p - 2; id <= p + 1; ++id) tx_ids.push_back(id);
  }
  ASSERT_GE(tx_ids.size(), 8u) << "a new cluster's transaction ids start above 700";
  std::shuffle(tx_ids.begin(), tx_ids.end(), std::minstd_rand(7));
  std::vector<std::pair<std::uint64_t, std::int64_t>> expected;  // (tx id, position)
  {
    pqxx::work tx(c);
    for (std::size_t i = 0; i < tx_ids.size(); ++i) {
      const auto position =
          tx.exec_params(
                "INSERT INTO events (tx_id, event_id, stream_id, stream_version, type, "
                "schema_version, occurred_at, correlation_id, causation_id, data) "
                "VALUES ($1::text::xid8, $2::uuid, $3, 1, 'TestHappened', 1, now(), $4::uuid, "
                "$4::uuid, '{}') RETURNING position",
                std::to_string(tx_ids[i]), new_uuid(), "x-" + std::to_string(i), new_uuid())[0][0]
              .as<std::int64_t>();
      expected.emplace_back(tx_ids[i], position);
    }
    tx.commit();
  }
  std::sort(expected.begin(), expected.end());
  std::vector<std::int64_t> want;
  for (const auto& [id, position] : expected) want.push_back(position);
  for (int limit : {1, 3, 7, 100}) {
    GlobalCheckpoint cp;
    std::vector<std::int64_t> read;
    for (int round = 0; round < 1000; ++round) {
      pqxx::work tx(c);
      auto batch = read_global(tx, cp, limit);
      tx.commit();
      if (batch.events.empty()) break;
      for (const auto& e : batch.events) read.push_back(e.position);
      cp = batch.next;
    }
    EXPECT_EQ(read, want) << "batches of " << limit;
  }
}

// Six writers, a quarter of whose transactions roll back, and a reader polling all the while:
// every committed event is read exactly once.
TEST_F(EventStoreTest, ConcurrentWritersWithRollbacksAreReadExactlyOnce) {
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w) {
    writers.emplace_back([&, w] {
      std::minstd_rand rng(static_cast<unsigned>(w));
      for (int i = 0; i < 60; ++i) {
        auto s = store_->begin();
        s->append({{"w-" + new_uuid(), kNoStream, {event(), event()}}}, meta());
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
        if (rng() % 4 != 0) s->commit();  // one in four rolls back
      }
    });
  }
  std::vector<RecordedEvent> seen;
  GlobalCheckpoint cp;
  std::thread reader([&] {
    while (!done.load()) {
      auto batch = read_all(cp);
      seen.insert(seen.end(), batch.begin(), batch.end());
    }
    auto batch = read_all(cp);
    seen.insert(seen.end(), batch.begin(), batch.end());
  });
  for (auto& t : writers) t.join();
  done = true;
  reader.join();
  std::size_t committed = 0;
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    committed = tx.exec("SELECT count(*) FROM events")[0][0].as<std::size_t>();
  }
  auto rest = read_until(cp, [&](const auto& evs) { return seen.size() + evs.size() >= committed; });
  seen.insert(seen.end(), rest.begin(), rest.end());
  if (seen.size() < committed) {
    // Say whether the reader is held back (and by whom) or has passed events by.
    pqxx::connection c(url_);
    pqxx::work tx(c);
    auto where = tx.exec_params(
        "SELECT count(*) FILTER (WHERE (tx_id, position) <= ($1::xid8, $2)), "
        "pg_snapshot_xmin(pg_current_snapshot())::text, min(tx_id::text) FROM events",
        cp.tx, cp.position);
    ADD_FAILURE() << "reader at (" << cp.tx << ", " << cp.position << "), horizon "
                  << where[0][1].c_str() << ", events at or before the checkpoint: "
                  << where[0][0].c_str();
    for (const auto& row : tx.exec(
             "SELECT pid, datname, backend_xid::text, backend_xmin::text, state, "
             "left(query, 120), now() - xact_start FROM pg_stat_activity "
             "WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL")) {
      ADD_FAILURE() << "running: pid " << row[0].c_str() << " db " << row[1].c_str() << " xid "
                    << row[2].c_str() << " xmin " << row[3].c_str() << " " << row[4].c_str()
                    << " for " << row[6].c_str() << ": " << row[5].c_str();
    }
  }

  {
    std::set<std::string> seen_ids;
    for (const auto& e : seen) seen_ids.insert(e.event_id);
    pqxx::connection c(url_);
    pqxx::work tx(c);
    int shown = 0;
    for (const auto& row : tx.exec("SELECT event_id::text, tx_id::text AS tx, position FROM events "
                                   "ORDER BY events.tx_id, position")) {
      if (!seen_ids.count(row[0].c_str()) && shown++ < 6) {
        ADD_FAILURE() << "missed event at (" << row[1].c_str() << ", " << row[2].c_str() << ")";
      }
    }
    auto per_tx = tx.exec(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM events GROUP BY tx_id) c");
    EXPECT_EQ(per_tx[0][0].as<int>(), 2) << "events of one transaction (each append writes 2)";
    if (shown > 0 || seen.size() > seen_ids.size()) {
      std::string t;
      for (const auto& line : trace_) t += line + "\n";
      ADD_FAILURE() << "reads:\n" << t;
    }
  }
  std::set<std::string> ids;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_TRUE(ids.insert(seen[i].event_id).second)
        << "duplicate: position " << seen[i].position << " at index " << i << " of "
        << seen.size();
  }
  pqxx::connection c(url_);
  pqxx::work tx(c);
  auto all = tx.exec("SELECT event_id::text FROM events");
  EXPECT_EQ(all.size(), ids.size());
  for (const auto& row : all) EXPECT_TRUE(ids.count(row[0].c_str())) << "skipped an event";
  EXPECT_GT(all.size(), 300u);
}

}  // namespace
}  // namespace shop::infra

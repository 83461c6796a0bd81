// The Kafka broker that scripts/test.sh starts (infra/kafka/kafka.sh start-temp), driven through
// librdkafka's C API as the services will drive it: topics made with the admin API, an
// idempotent producer, a consumer group that commits its offsets, transactions, and kcat (what
// analysts use to read the topics) against the same broker.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/kafka_fixture.h"

namespace {

using shop::testing::create_test_topic;
using shop::testing::delete_test_topic;
using shop::testing::test_kafka_brokers;
using shop::testing::unique_kafka_name;

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Client = std::unique_ptr<rd_kafka_t, ClientDeleter>;

struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;

struct ErrorDeleter {
  void operator()(rd_kafka_error_t* error) const { rd_kafka_error_destroy(error); }
};
// Fails the test with the error's text when `error` is set.
void expect_ok(rd_kafka_error_t* raw, const char* what) {
  std::unique_ptr<rd_kafka_error_t, ErrorDeleter> error(raw);
  if (error) FAIL() << what << ": " << rd_kafka_error_string(error.get());
}

using Header = std::pair<std::string, std::optional<std::string>>;  // a null value is nullopt

// What the delivery report callback saw for one message.
struct Delivery {
  rd_kafka_resp_err_t err;
  rd_kafka_msg_status_t status;
  std::string key;
  int32_t partition;
  int64_t offset;
};

struct Received {
  std::string key;
  std::string value;
  int32_t partition;
  int64_t offset;
  std::vector<Header> headers;
};

// Runs from rd_kafka_poll / rd_kafka_flush on the calling thread, so no lock is needed.
void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* log = static_cast<std::vector<Delivery>*>(opaque);
  log->push_back({m->err, rd_kafka_message_status(m),
                  std::string(static_cast<const char*>(m->key), m->key_len), m->partition,
                  m->offset});
}

Client make_client(rd_kafka_type_t type, const std::map<std::string, std::string>& settings,
                   std::vector<Delivery>* deliveries = nullptr) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(key + "=" + value + ": " + errstr);
    }
  }
  if (deliveries) {
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, deliveries);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("rd_kafka_new: ") + errstr);
  }
  if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
  return Client(rk);
}

// Produces one message (copied) with the given headers; fails the test when it is refused.
void produce(rd_kafka_t* producer, const std::string& topic, const std::string& key,
             const std::string& value, const std::vector<Header>& headers) {
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
  for (const auto& [name, v] : headers) {
    rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()),
                        v ? v->data() : nullptr, v ? static_cast<ssize_t>(v->size()) : 0);
  }
  std::string payload = value;  // RD_KAFKA_V_VALUE takes a non-const pointer
  rd_kafka_resp_err_t err = rd_kafka_producev(
      producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
      RD_KAFKA_V_VALUE(payload.data(), payload.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(hdrs);  // the producer owns them only when it accepts the message
    FAIL() << "producing to " << topic << ": " << rd_kafka_err2str(err);
  }
}

Client subscribe(const std::string& brokers, const std::string& topic,
                 std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> settings = {
      {"bootstrap.servers", brokers},
      {"group.id", unique_kafka_name("test-group")},
      {"auto.offset.reset", "earliest"},
      {"enable.auto.commit", "false"},
  };
  settings.merge(extra);
  Client consumer = make_client(RD_KAFKA_CONSUMER, settings);
  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer.get(), topics.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("subscribing to " + topic + ": " + rd_kafka_err2str(err));
  }
  return consumer;
}

// Polls until `stop` says so or 60 s pass; any error message fails the test.
template <class Stop>
std::vector<Received> consume_until(rd_kafka_t* consumer, Stop stop) {
  std::vector<Received> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!stop(out) && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 200);
    if (!m) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ADD_FAILURE() << "consumer error: " << rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      break;
    }
    Received r;
    r.key.assign(static_cast<const char*>(m->key), m->key_len);
    r.value.assign(static_cast<const char*>(m->payload), m->len);
    r.partition = m->partition;
    r.offset = m->offset;
    rd_kafka_headers_t* hdrs = nullptr;  // owned by the message
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* value;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        r.headers.emplace_back(name, value ? std::optional<std::string>(
                                                 std::string(static_cast<const char*>(value), size))
                                           : std::nullopt);
      }
    }
    out.push_back(std::move(r));
    rd_kafka_message_destroy(m);
  }
  return out;
}

std::vector<Header> headers_for(const std::string& key, int seq) {
  return {{"event-type", "CartItemAdded"},
          {"sequence", std::to_string(seq)},
          {"binary", std::string("\0\x01\xff", 3) + key},
          {"trace", std::nullopt}};
}

// An idempotent producer writes keyed messages with headers to a 3-partition topic; a consumer
// group reads every one back exactly once, each key on one partition in the order written, with
// keys, values and headers (binary and null ones included) intact, and commits its offsets.
TEST(KafkaBroker, IdempotentProducerAndConsumerGroupRoundTrip) {
  const std::string brokers = test_kafka_brokers();
  const std::string topic = create_test_topic("broker-roundtrip", 3);
  const std::vector<std::string> keys = {"cart-1", "cart-2", "cart-3", "cart-4",
                                         "cart-5", "cart-6", "cart-7", "cart-8"};
  constexpr int kPerKey = 5;
  const size_t total = keys.size() * kPerKey;

  std::vector<Delivery> deliveries;
  {
    Client producer = make_client(
        RD_KAFKA_PRODUCER,
        {{"bootstrap.servers", brokers}, {"enable.idempotence", "true"}, {"linger.ms", "5"}},
        &deliveries);
    auto setting = [&](const char* name) {
      char value[64];
      size_t size = sizeof value;
      if (rd_kafka_conf_get(rd_kafka_conf(producer.get()), name, value, &size) !=
          RD_KAFKA_CONF_OK) {
        return std::string("(unknown)");
      }
      return std::string(value);
    };
    EXPECT_EQ(setting("enable.idempotence"), "true");

    for (int seq = 0; seq < kPerKey; ++seq) {
      for (const auto& key : keys) {
        ASSERT_NO_FATAL_FAILURE(produce(producer.get(), topic, key, key + "#" + std::to_string(seq),
                                        headers_for(key, seq)));
      }
    }
    ASSERT_EQ(rd_kafka_flush(producer.get(), 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  ASSERT_EQ(deliveries.size(), total);
  std::map<std::string, int32_t> partition_of;
  std::map<std::string, int64_t> last_offset;
  for (const auto& d : deliveries) {
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
    EXPECT_EQ(d.status, RD_KAFKA_MSG_STATUS_PERSISTED);
    auto [it, first] = partition_of.emplace(d.key, d.partition);
    EXPECT_EQ(it->second, d.partition) << "key " << d.key << " moved between partitions";
    if (!first) {
      EXPECT_GT(d.offset, last_offset[d.key]);
    }
    last_offset[d.key] = d.offset;
  }
  std::set<int32_t> used;
  for (const auto& [key, partition] : partition_of) used.insert(partition);
  EXPECT_GT(used.size(), 1u) << "the keys should spread over the partitions";

  Client consumer = subscribe(brokers, topic);
  std::vector<Received> received = consume_until(
      consumer.get(), [&](const std::vector<Received>& got) { return got.size() >= total; });
  ASSERT_EQ(received.size(), total);

  std::map<std::string, int> next_seq;
  for (const auto& r : received) {
    const int seq = next_seq[r.key]++;
    EXPECT_EQ(r.value, r.key + "#" + std::to_string(seq)) << "per-key order";
    EXPECT_EQ(r.partition, partition_of.at(r.key));
    EXPECT_EQ(r.headers, headers_for(r.key, seq));
  }
  for (const auto& key : keys) EXPECT_EQ(next_seq[key], kPerKey) << key;

  // Nothing else is in the topic (no duplicates from retries), and the group's offsets commit.
  int64_t in_topic = 0;
  for (int32_t p = 0; p < 3; ++p) {
    int64_t low = 0, high = 0;
    ASSERT_EQ(
        rd_kafka_query_watermark_offsets(consumer.get(), topic.c_str(), p, &low, &high, 10000),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    in_topic += high - low;
  }
  EXPECT_EQ(in_topic, static_cast<int64_t>(total));

  ASSERT_EQ(rd_kafka_commit(consumer.get(), nullptr, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  PartitionList committed(rd_kafka_topic_partition_list_new(3));
  for (int32_t p = 0; p < 3; ++p) {
    rd_kafka_topic_partition_list_add(committed.get(), topic.c_str(), p);
  }
  ASSERT_EQ(rd_kafka_committed(consumer.get(), committed.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  int64_t committed_total = 0;
  for (int i = 0; i < committed->cnt; ++i) {
    if (committed->elems[i].offset >= 0) committed_total += committed->elems[i].offset;
  }
  EXPECT_EQ(committed_total, static_cast<int64_t>(total));

  EXPECT_EQ(rd_kafka_consumer_close(consumer.get()), RD_KAFKA_RESP_ERR_NO_ERROR);
  consumer.reset();
  delete_test_topic(topic);
}

// Transactions work on the single node (its transaction state log has one replica): a
// read_committed consumer sees committed messages and never aborted ones.
TEST(KafkaBroker, TransactionsCommitAndAbort) {
  const std::string brokers = test_kafka_brokers();
  const std::string topic = create_test_topic("broker-transactions", 1);
  {
    Client producer = make_client(
        RD_KAFKA_PRODUCER,
        {{"bootstrap.servers", brokers}, {"transactional.id", unique_kafka_name("test-tx")}});
    ASSERT_NO_FATAL_FAILURE(
        expect_ok(rd_kafka_init_transactions(producer.get(), 30000), "init_transactions"));
    const std::vector<std::pair<std::vector<std::string>, bool>> batches = {
        {{"committed-1", "committed-2"}, true},
        {{"aborted-1", "aborted-2"}, false},
        {{"committed-3"}, true}};
    for (const auto& [values, commit] : batches) {
      ASSERT_NO_FATAL_FAILURE(
          expect_ok(rd_kafka_begin_transaction(producer.get()), "begin_transaction"));
      for (const auto& v : values) {
        ASSERT_NO_FATAL_FAILURE(produce(producer.get(), topic, "k", v, {}));
      }
      if (commit) {
        ASSERT_NO_FATAL_FAILURE(
            expect_ok(rd_kafka_commit_transaction(producer.get(), 30000), "commit_transaction"));
      } else {
        // The aborted messages reach the log first, so the consumer has something to skip.
        // (Aborting while the messages are still queued, without the flush, can fail with
        // INVALID_TXN_STATE in librdkafka 2.0.2 against Kafka 3.9: librdkafka issue #4849.)
        ASSERT_EQ(rd_kafka_flush(producer.get(), 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
        ASSERT_NO_FATAL_FAILURE(
            expect_ok(rd_kafka_abort_transaction(producer.get(), 30000), "abort_transaction"));
      }
    }
  }

  Client consumer = subscribe(brokers, topic, {{"isolation.level", "read_committed"}});
  std::vector<Received> received =
      consume_until(consumer.get(), [](const std::vector<Received>& got) {
        return !got.empty() && got.back().value == "committed-3";
      });
  std::vector<std::string> values;
  for (const auto& r : received) values.push_back(r.value);
  EXPECT_EQ(values, (std::vector<std::string>{"committed-1", "committed-2", "committed-3"}));
  // The log holds all five messages and three transaction markers; the aborted two were skipped.
  int64_t low = 0, high = 0;
  ASSERT_EQ(rd_kafka_query_watermark_offsets(consumer.get(), topic.c_str(), 0, &low, &high, 10000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(high - low, 8);
  rd_kafka_consumer_close(consumer.get());
  consumer.reset();
  delete_test_topic(topic);
}

// Runs a shell command; returns its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// kcat, the shell tool for reading the topics, sees the broker, lists the topic with its
// partitions, and reads its messages with keys and headers.
TEST(KafkaBroker, KcatListsAndReadsTheTopic) {
  const std::string brokers = test_kafka_brokers();
  const std::string topic = create_test_topic("broker-kcat", 3);
  auto [found, where] = run("command -v kcat");
  ASSERT_EQ(found, 0) << "kcat is not installed (scripts/install-deps.sh installs it)";

  auto [rc, listing] = run("timeout 60 kcat -b " + brokers + " -L");
  ASSERT_EQ(rc, 0) << listing;
  EXPECT_NE(listing.find("topic \"" + topic + "\" with 3 partitions:"), std::string::npos)
      << listing;

  {
    Client producer = make_client(RD_KAFKA_PRODUCER,
                                  {{"bootstrap.servers", brokers}, {"enable.idempotence", "true"}});
    ASSERT_NO_FATAL_FAILURE(produce(producer.get(), topic, "order-1", R"({"total":"12.50"})",
                                    {{"event-type", "OrderPlaced"}}));
    ASSERT_EQ(rd_kafka_flush(producer.get(), 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  auto [rc2, messages] = run("timeout 60 kcat -b " + brokers + " -C -t " + topic +
                             " -o beginning -e -q -f '%k|%s|%h\\n'");
  ASSERT_EQ(rc2, 0) << messages;
  EXPECT_EQ(messages, "order-1|{\"total\":\"12.50\"}|event-type=OrderPlaced\n");
  delete_test_topic(topic);
}

}  // namespace

#include "support/kafka_fixture.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

namespace shop::testing {

namespace {

template <class T, void (*Destroy)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Destroy(p);
  }
};
using Client = std::unique_ptr<rd_kafka_t, Deleter<rd_kafka_t, rd_kafka_destroy>>;
using Queue = std::unique_ptr<rd_kafka_queue_t, Deleter<rd_kafka_queue_t, rd_kafka_queue_destroy>>;
using Event = std::unique_ptr<rd_kafka_event_t, Deleter<rd_kafka_event_t, rd_kafka_event_destroy>>;
using Options = std::unique_ptr<rd_kafka_AdminOptions_t,
                                Deleter<rd_kafka_AdminOptions_t, rd_kafka_AdminOptions_destroy>>;
using NewTopic =
    std::unique_ptr<rd_kafka_NewTopic_t, Deleter<rd_kafka_NewTopic_t, rd_kafka_NewTopic_destroy>>;
using DeleteTopic = std::unique_ptr<rd_kafka_DeleteTopic_t,
                                    Deleter<rd_kafka_DeleteTopic_t, rd_kafka_DeleteTopic_destroy>>;
using Topic = std::unique_ptr<rd_kafka_topic_t, Deleter<rd_kafka_topic_t, rd_kafka_topic_destroy>>;
using Metadata = std::unique_ptr<const rd_kafka_metadata_t,
                                 Deleter<const rd_kafka_metadata_t, rd_kafka_metadata_destroy>>;

constexpr int kAdminTimeoutMs = 30000;

std::string env_brokers() {
  const char* brokers = std::getenv("TEST_KAFKA_BROKERS");
  if (!brokers || !*brokers) {
    throw std::runtime_error(
        "TEST_KAFKA_BROKERS is not set: run the tests through scripts/test.sh, which starts a "
        "throwaway Kafka broker (infra/kafka/kafka.sh start-temp; tests that need Kafka fail "
        "rather than skip)");
  }
  return brokers;
}

// A client handle for admin and metadata requests (a producer, which opens no consumer group).
Client admin_client(const std::string& brokers) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("librdkafka configuration: ") + errstr);
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes the configuration only when it succeeds
    throw std::runtime_error(std::string("rd_kafka_new: ") + errstr);
  }
  return Client(rk);
}

// Waits until the broker's metadata shows `topic` with `partitions` partitions, each with a
// leader: CreateTopics returns once the controller has created the topic, which the broker's
// metadata cache may show a moment later.
void wait_for_topic(rd_kafka_t* rk, const std::string& topic, int partitions) {
  Topic handle(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string last = "no metadata";
  while (std::chrono::steady_clock::now() < deadline) {
    const rd_kafka_metadata_t* raw = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, handle.get(), &raw, 5000);
    Metadata md(raw);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last = rd_kafka_err2str(err);
    } else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      last = md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "topic missing";
    } else if (md->topics[0].partition_cnt != partitions) {
      last = std::to_string(md->topics[0].partition_cnt) + " partitions";
    } else {
      bool ready = true;
      for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
        const auto& p = md->topics[0].partitions[i];
        if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR || p.leader < 0) ready = false;
      }
      if (ready) return;
      last = "a partition has no leader yet";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("topic " + topic + " was created but is not ready after 30 s: " + last);
}

}  // namespace

std::string test_kafka_brokers() {
  static std::mutex mutex;
  static std::string checked;  // the address that answered, once it did
  const std::string brokers = env_brokers();
  std::lock_guard lock(mutex);
  if (checked == brokers) return brokers;
  Client rk = admin_client(brokers);
  const rd_kafka_metadata_t* raw = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk.get(), 0, nullptr, &raw, 15000);
  Metadata md(raw);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("no Kafka broker answers at TEST_KAFKA_BROKERS=" + brokers + " (" +
                             rd_kafka_err2str(err) +
                             "): scripts/test.sh starts one with infra/kafka/kafka.sh start-temp");
  }
  if (md->broker_cnt < 1) {
    throw std::runtime_error("the Kafka cluster at " + brokers + " reports no brokers");
  }
  checked = brokers;
  return brokers;
}

std::string unique_kafka_name(const std::string& prefix) {
  static std::mutex mutex;
  static std::mt19937_64 random{(std::uint64_t{std::random_device{}()} << 32) ^
                                std::random_device{}()};
  std::uint64_t bits;
  {
    std::lock_guard lock(mutex);
    bits = random();
  }
  std::string name = prefix.substr(0, 200);
  for (auto& c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) c = '-';
  }
  static constexpr char kHex[] = "0123456789abcdef";
  name += '-';
  for (int i = 0; i < 16; ++i) name += kHex[(bits >> (4 * i)) & 0xf];
  return name;
}

std::string create_test_topic(const std::string& prefix, int partitions,
                              const std::map<std::string, std::string>& config) {
  const std::string brokers = test_kafka_brokers();
  const std::string topic = unique_kafka_name(prefix);
  Client rk = admin_client(brokers);
  char errstr[512];

  NewTopic spec(rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, errstr, sizeof errstr));
  if (!spec) throw std::runtime_error("rd_kafka_NewTopic_new(" + topic + "): " + errstr);
  for (const auto& [key, value] : config) {
    rd_kafka_resp_err_t err = rd_kafka_NewTopic_set_config(spec.get(), key.c_str(), value.c_str());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("topic config " + key + "=" + value + ": " + rd_kafka_err2str(err));
    }
  }
  Options options(rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  if (rd_kafka_AdminOptions_set_operation_timeout(options.get(), kAdminTimeoutMs, errstr,
                                                  sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_AdminOptions_set_request_timeout(options.get(), kAdminTimeoutMs, errstr,
                                                sizeof errstr) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("admin options: ") + errstr);
  }

  Queue queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_NewTopic_t* specs[] = {spec.get()};
  rd_kafka_CreateTopics(rk.get(), specs, 1, options.get(), queue.get());
  Event event(rd_kafka_queue_poll(queue.get(), kAdminTimeoutMs + 10000));
  if (!event) throw std::runtime_error("creating topic " + topic + ": no answer");
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("creating topic " + topic + ": " +
                             rd_kafka_event_error_string(event.get()));
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  size_t count = 0;
  const rd_kafka_topic_result_t** topics =
      result ? rd_kafka_CreateTopics_result_topics(result, &count) : nullptr;
  if (count != 1) throw std::runtime_error("creating topic " + topic + ": unexpected answer");
  if (rd_kafka_topic_result_error(topics[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* message = rd_kafka_topic_result_error_string(topics[0]);
    throw std::runtime_error(
        "creating topic " + topic + ": " +
        (message ? message : rd_kafka_err2str(rd_kafka_topic_result_error(topics[0]))));
  }
  wait_for_topic(rk.get(), topic, partitions);
  return topic;
}

void delete_test_topic(const std::string& topic) {
  try {
    Client rk = admin_client(env_brokers());
    DeleteTopic spec(rd_kafka_DeleteTopic_new(topic.c_str()));
    Options options(rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_DELETETOPICS));
    Queue queue(rd_kafka_queue_new(rk.get()));
    rd_kafka_DeleteTopic_t* specs[] = {spec.get()};
    rd_kafka_DeleteTopics(rk.get(), specs, 1, options.get(), queue.get());
    Event event(rd_kafka_queue_poll(queue.get(), kAdminTimeoutMs));
  } catch (const std::exception&) {
  }
}

}  // namespace shop::testing

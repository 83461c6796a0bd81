#include "shop/infra/kafka.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <exception>
#include <map>
#include <set>
#include <thread>

#include "shop/events/json.h"

namespace shop::infra::kafka {

namespace {

int ms(std::chrono::milliseconds d) {
  return static_cast<int>(d.count());
}

rd_kafka_conf_t* make_conf(const Properties& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw Error("kafka setting " + k + ": " + err);
    }
  }
  return conf;
}

// Takes ownership of a librdkafka error object and throws it as kafka::Error.
[[noreturn]] void throw_error(rd_kafka_error_t* e, const std::string& what) {
  Error out(what + ": " + rd_kafka_error_string(e), rd_kafka_error_is_retriable(e) != 0,
            rd_kafka_error_txn_requires_abort(e) != 0, rd_kafka_error_is_fatal(e) != 0);
  rd_kafka_error_destroy(e);
  throw out;
}

void check(rd_kafka_error_t* e, const std::string& what) {
  if (e != nullptr) throw_error(e, what);
}

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

Handle make_handle(rd_kafka_type_t type, const Properties& props) {
  rd_kafka_conf_t* conf = make_conf(props);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);  // owns conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw Error(std::string("kafka client: ") + err);
  }
  return Handle(rk);
}

// Waits until every topic is known to the client's broker with all its partitions led: a topic
// just created is not usable at once.
void wait_for_topics(rd_kafka_t* rk, const std::vector<TopicSpec>& topics,
                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& t : topics) {
    for (;;) {
      rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, t.name.c_str(), nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      const auto err = rd_kafka_metadata(rk, 0, handle, &md, 5000);
      rd_kafka_topic_destroy(handle);
      bool ready = false;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < md->topic_cnt; ++i) {
          const auto& mt = md->topics[i];
          if (t.name != mt.topic || mt.err != RD_KAFKA_RESP_ERR_NO_ERROR || mt.partition_cnt < 1) {
            continue;
          }
          ready = true;
          for (int p = 0; p < mt.partition_cnt; ++p) {
            if (mt.partitions[p].leader < 0 || mt.partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
              ready = false;
            }
          }
        }
        rd_kafka_metadata_destroy(md);
      }
      if (ready) break;
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error("topic " + t.name + " has no leader yet", true);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace

std::string partition_offsets_json(const PartitionOffsets& offsets) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartArray();
  for (const auto& [tp, offset] : offsets) {
    w.StartObject();
    w.Key("topic");
    w.String(tp.topic);
    w.Key("partition");
    w.Int(tp.partition);
    w.Key("offset");
    w.Int64(offset);
    w.EndObject();
  }
  w.EndArray();
  return {buf.GetString(), buf.GetSize()};
}

PartitionOffsets parse_partition_offsets(std::string_view text) {
  json::Document d;
  if (auto error = json::parse(text, d); !error.empty() || !d.IsArray()) {
    throw Error("partition offsets: not a JSON array: " + std::string(text.substr(0, 200)));
  }
  PartitionOffsets out;
  for (const auto& x : d.GetArray()) {
    const json::Value* topic = x.IsObject() ? json::member(x, "topic") : nullptr;
    const json::Value* partition = x.IsObject() ? json::member(x, "partition") : nullptr;
    const json::Value* offset = x.IsObject() ? json::member(x, "offset") : nullptr;
    if (topic == nullptr || !topic->IsString() || partition == nullptr || !partition->IsInt() ||
        offset == nullptr || !offset->IsInt64()) {
      throw Error("partition offsets: each entry needs topic, partition and offset");
    }
    out[{topic->GetString(), partition->GetInt()}] = offset->GetInt64();
  }
  return out;
}

std::optional<std::string> Message::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------- producer

struct TransactionalProducer::Impl {
  Handle rk;
  PartitionOffsets last_offsets;  // of the current transaction

  // Delivery reports, served on the thread that polls or flushes.
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || m->offset < 0) return;  // commit will fail
    auto& last =
        static_cast<Impl*>(opaque)->last_offsets[{rd_kafka_topic_name(m->rkt), m->partition}];
    last = std::max(last, m->offset);
  }
};

TransactionalProducer::TransactionalProducer(const Properties& props)
    : impl_(std::make_unique<Impl>()) {
  rd_kafka_conf_t* conf = make_conf(props);
  rd_kafka_conf_set_dr_msg_cb(conf, &Impl::on_delivery);
  rd_kafka_conf_set_opaque(conf, impl_.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);  // owns conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw Error(std::string("kafka client: ") + err);
  }
  impl_->rk = Handle(rk);
}

TransactionalProducer::~TransactionalProducer() {
  // Unsent messages of an unfinished transaction are dropped: the broker aborts it (or the next
  // producer with the same transactional.id does).
  if (impl_->rk)
    rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

void TransactionalProducer::init_transactions(std::chrono::milliseconds timeout) {
  check(rd_kafka_init_transactions(impl_->rk.get(), ms(timeout)), "init transactions");
}

void TransactionalProducer::begin_transaction() {
  check(rd_kafka_begin_transaction(impl_->rk.get()), "begin transaction");
  impl_->last_offsets.clear();
}

void TransactionalProducer::flush(std::chrono::milliseconds timeout) {
  const auto err = rd_kafka_flush(impl_->rk.get(), ms(timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(std::string("flush: ") + rd_kafka_err2str(err), true, true);
  }
}

const PartitionOffsets& TransactionalProducer::last_offsets() const {
  return impl_->last_offsets;
}

void TransactionalProducer::produce(const std::string& topic, std::string_view key,
                                    std::string_view value, const Headers& headers) {
  rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
  for (const auto& [k, v] : headers) {
    rd_kafka_header_add(hdrs, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                        static_cast<ssize_t>(v.size()));
  }
  for (;;) {
    // On success librdkafka owns the headers; on failure they are still ours.
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(impl_->rk.get(), 50);  // let deliveries drain the queue
      continue;
    }
    rd_kafka_headers_destroy(hdrs);
    const bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
    throw Error(std::string("produce to ") + topic + ": " + rd_kafka_err2str(err), false, !fatal,
                fatal);
  }
}

void TransactionalProducer::commit_transaction(std::chrono::milliseconds timeout) {
  check(rd_kafka_commit_transaction(impl_->rk.get(), ms(timeout)), "commit transaction");
}

void TransactionalProducer::abort_transaction(std::chrono::milliseconds timeout) {
  check(rd_kafka_abort_transaction(impl_->rk.get(), ms(timeout)), "abort transaction");
}

void TransactionalProducer::create_topics(const std::vector<TopicSpec>& topics,
                                          std::chrono::milliseconds timeout) {
  if (topics.empty()) return;
  rd_kafka_t* rk = impl_->rk.get();
  std::vector<rd_kafka_NewTopic_t*> specs;
  char err[512];
  auto cleanup = [&] { rd_kafka_NewTopic_destroy_array(specs.data(), specs.size()); };
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor, err, sizeof err);
    if (nt == nullptr) {
      cleanup();
      throw Error("topic " + t.name + ": " + err);
    }
    specs.push_back(nt);
    for (const auto& [k, v] : t.config) {
      if (rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        cleanup();
        throw Error("topic " + t.name + ": bad setting " + k);
      }
    }
  }
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, ms(timeout), err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(options, ms(timeout), err, sizeof err);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, specs.data(), specs.size(), options, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, ms(timeout) + 5000);
  std::string failure;
  bool retriable = false;
  if (ev == nullptr) {
    failure = "no answer from the cluster";
    retriable = true;
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(ev);
    retriable = true;
  } else {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &n);
    for (size_t i = 0; i < n; ++i) {
      const auto code = rd_kafka_topic_result_error(results[i]);
      if (code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        continue;
      }
      failure += std::string(rd_kafka_topic_result_name(results[i])) + ": " +
                 (rd_kafka_topic_result_error_string(results[i])
                      ? rd_kafka_topic_result_error_string(results[i])
                      : rd_kafka_err2str(code)) +
                 "; ";
      retriable = true;  // e.g. a topic still being deleted, or too few brokers for now
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(options);
  cleanup();
  if (!failure.empty()) throw Error("create topics: " + failure, retriable);
  wait_for_topics(rk, topics, timeout);
}

// ---------------------------------------------------------------------------------- consumer

struct Consumer::Impl {
  Handle rk;
};

Consumer::Consumer(const Properties& props) : impl_(std::make_unique<Impl>()) {
  Properties p = {{"enable.auto.commit", "false"},
                  {"enable.partition.eof", "true"},
                  {"isolation.level", "read_committed"},
                  {"group.id", "shop-reader"}};  // needed by the API; no group is joined
  for (const auto& kv : props) p.push_back(kv);
  impl_->rk = make_handle(RD_KAFKA_CONSUMER, p);
  rd_kafka_poll_set_consumer(impl_->rk.get());
}

Consumer::~Consumer() {
  if (impl_->rk) rd_kafka_consumer_close(impl_->rk.get());
}

std::pair<std::int64_t, std::int64_t> Consumer::watermarks(const std::string& topic, int partition,
                                                           std::chrono::milliseconds timeout) {
  std::int64_t low = 0, high = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto err = rd_kafka_query_watermark_offsets(impl_->rk.get(), topic.c_str(), partition,
                                                      &low, &high, ms(timeout));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {low, high};
    // A topic just created: the broker may not lead its partitions yet.
    const bool settling = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                          err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                          err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (!settling || std::chrono::steady_clock::now() > deadline) {
      throw Error("offsets of " + topic + ": " + rd_kafka_err2str(err), true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int Consumer::partition_count(const std::string& topic, std::chrono::milliseconds timeout) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(impl_->rk.get(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(impl_->rk.get(), 0, t, &md, ms(timeout));
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error("metadata of " + topic + ": " + rd_kafka_err2str(err), true);
  }
  int n = 0;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      n = md->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

std::vector<std::pair<std::string, std::string>> Consumer::topic_config(
    const std::string& topic, std::chrono::milliseconds timeout) {
  rd_kafka_t* rk = impl_->rk.get();
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  char err[512];
  rd_kafka_AdminOptions_set_request_timeout(options, ms(timeout), err, sizeof err);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, options, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, ms(timeout) + 5000);
  std::vector<std::pair<std::string, std::string>> out;
  std::string failure;
  if (ev == nullptr) {
    failure = "no answer from the cluster";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(ev);
  } else {
    size_t n = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_err2str(rd_kafka_ConfigResource_error(resources[i]));
        continue;
      }
      size_t count = 0;
      const rd_kafka_ConfigEntry_t** entries =
          rd_kafka_ConfigResource_configs(resources[i], &count);
      for (size_t j = 0; j < count; ++j) {
        const char* value = rd_kafka_ConfigEntry_value(entries[j]);
        out.emplace_back(rd_kafka_ConfigEntry_name(entries[j]), value ? value : "");
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_ConfigResource_destroy(resource);
  if (!failure.empty()) throw Error("configuration of " + topic + ": " + failure, true);
  return out;
}

void Consumer::assign(const std::vector<TopicPartitionOffset>& partitions) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (const auto& p : partitions) {
    rd_kafka_topic_partition_list_add(list, p.topic.c_str(), p.partition)->offset = p.offset;
  }
  const auto err = rd_kafka_assign(impl_->rk.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(std::string("assign: ") + rd_kafka_err2str(err));
  }
}

Consumer::Polled Consumer::poll(std::chrono::milliseconds timeout) {
  Polled out;
  rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk.get(), ms(timeout));
  if (m == nullptr) return out;
  struct Free {
    rd_kafka_message_t* m;
    ~Free() { rd_kafka_message_destroy(m); }
  } free_it{m};
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    out.end_of_partition = true;
    out.topic = rd_kafka_topic_name(m->rkt);
    out.partition = m->partition;
    return out;
  }
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(std::string("consume: ") + rd_kafka_message_errstr(m), true);
  }
  Message msg;
  msg.topic = rd_kafka_topic_name(m->rkt);
  msg.partition = m->partition;
  msg.offset = m->offset;
  if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
  if (m->payload != nullptr) msg.value.assign(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      msg.headers.emplace_back(
          name, value ? std::string(static_cast<const char*>(value), size) : std::string());
    }
  }
  out.message = std::move(msg);
  return out;
}

void read_to_end(Consumer& consumer, const std::vector<TopicPartitionOffset>& partitions,
                 const std::function<void(const Message&)>& on_message,
                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::set<std::pair<std::string, int>> pending;
  std::vector<TopicPartitionOffset> to_read;
  for (const auto& p : partitions) {
    const auto [low, high] = consumer.watermarks(p.topic, p.partition, timeout);
    const auto from = std::max(p.offset, low);
    if (from >= high) continue;  // nothing there
    pending.insert({p.topic, p.partition});
    to_read.push_back({p.topic, p.partition, from});
  }
  if (to_read.empty()) return;
  consumer.assign(to_read);
  while (!pending.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error("reading " + pending.begin()->first + " did not reach its end in time", true);
    }
    auto polled = consumer.poll(std::chrono::milliseconds(200));
    if (polled.message) {
      on_message(*polled.message);
    } else if (polled.end_of_partition) {
      pending.erase({polled.topic, polled.partition});
    }
  }
  consumer.assign({});
}

// ---------------------------------------------------------------------------- group consumer

namespace {

Message message_from(const rd_kafka_message_t* m) {
  Message msg;
  msg.topic = rd_kafka_topic_name(m->rkt);
  msg.partition = m->partition;
  msg.offset = m->offset;
  if (m->key != nullptr) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
  if (m->payload != nullptr) msg.value.assign(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* hdrs = nullptr;
  // rd_kafka_message_headers takes a non-const message (it may parse the headers lazily).
  if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(m), &hdrs) ==
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      msg.headers.emplace_back(
          name, value ? std::string(static_cast<const char*>(value), size) : std::string());
    }
  }
  return msg;
}

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

PartitionList partition_list(const std::vector<TopicPartitionOffset>& partitions) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& p : partitions) {
    rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset = p.offset;
  }
  return list;
}

}  // namespace

struct GroupConsumer::Impl {
  Callbacks callbacks;
  Handle rk;
  std::set<TopicPartition> assigned;
  std::map<TopicPartition, std::int64_t> consumed;  // offset after the end, when last reached
  std::exception_ptr callback_error;
  std::uint64_t rebalances = 0;

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<Impl*>(opaque)->rebalance(rk, err, parts);
  }

  // Runs inside rd_kafka_consumer_poll (C code): nothing may be thrown through it, so a failure
  // is kept for poll() to rethrow.
  void rebalance(rd_kafka_t* handle, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* parts) {
    ++rebalances;
    std::vector<TopicPartition> list;
    for (int i = 0; i < parts->cnt; ++i) {
      list.push_back({parts->elems[i].topic, parts->elems[i].partition});
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      try {
        std::map<TopicPartition, std::int64_t> at;
        if (callbacks.on_assign) {
          for (const auto& o : callbacks.on_assign(list)) at[{o.topic, o.partition}] = o.offset;
        }
        for (int i = 0; i < parts->cnt; ++i) {
          auto it = at.find({parts->elems[i].topic, parts->elems[i].partition});
          if (it == at.end()) {
            throw Error(std::string("no offset to start ") + parts->elems[i].topic + " [" +
                        std::to_string(parts->elems[i].partition) + "] at");
          }
          parts->elems[i].offset = it->second;
        }
        const auto e = rd_kafka_assign(handle, parts);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
          throw Error(std::string("assign: ") + rd_kafka_err2str(e), true);
        }
        assigned.insert(list.begin(), list.end());
        for (const auto& tp : list) consumed.erase(tp);
      } catch (...) {
        callback_error = std::current_exception();
        rd_kafka_assign(handle, nullptr);
        assigned.clear();
        consumed.clear();
      }
      return;
    }
    // Revoked (or a rebalance error): give up everything, as the eager protocol wants.
    if (callbacks.on_revoke) {
      try {
        callbacks.on_revoke(list);
      } catch (...) {
        callback_error = std::current_exception();
      }
    }
    rd_kafka_assign(handle, nullptr);
    assigned.clear();
    consumed.clear();
  }

  void warn(const std::string& what) {
    if (callbacks.on_warning) callbacks.on_warning(what);
  }
};

GroupConsumer::GroupConsumer(const Properties& props, Callbacks callbacks)
    : impl_(std::make_unique<Impl>()) {
  impl_->callbacks = std::move(callbacks);
  Properties p = {
      {"enable.auto.commit", "false"},       {"enable.auto.offset.store", "false"},
      {"isolation.level", "read_committed"}, {"enable.partition.eof", "true"},
      {"auto.offset.reset", "error"},        {"partition.assignment.strategy", "roundrobin"}};
  for (const auto& kv : props) {
    if (kv.first == "partition.assignment.strategy" &&
        kv.second.find("cooperative") != std::string::npos) {
      // The rebalance callback follows the eager protocol (assign/unassign everything).
      throw Error(
          "kafka setting partition.assignment.strategy: cooperative assignors are not "
          "supported here");
    }
    p.push_back(kv);
  }
  rd_kafka_conf_t* conf = make_conf(p);
  rd_kafka_conf_set_rebalance_cb(conf, &Impl::on_rebalance);
  rd_kafka_conf_set_opaque(conf, impl_.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);  // owns conf on success
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw Error(std::string("kafka client: ") + err);
  }
  impl_->rk = Handle(rk);
  rd_kafka_poll_set_consumer(rk);
}

GroupConsumer::~GroupConsumer() {
  // Leaves the group at once (the revoke callback runs here), so that the partitions move to the
  // other members without waiting for the session to time out.
  if (impl_->rk) rd_kafka_consumer_close(impl_->rk.get());
}

void GroupConsumer::subscribe(const std::vector<std::string>& topics) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics) {
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const auto err = rd_kafka_subscribe(impl_->rk.get(), list.get());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Error(std::string("subscribe: ") + rd_kafka_err2str(err));
  }
}

std::vector<Message> GroupConsumer::poll(std::chrono::milliseconds timeout,
                                         std::size_t max_messages) {
  std::vector<Message> out;
  auto rebalances = impl_->rebalances;
  auto wait = timeout;
  while (out.size() < max_messages) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk.get(), ms(wait));
    wait = std::chrono::milliseconds(0);
    struct Free {
      rd_kafka_message_t* m;
      ~Free() {
        if (m != nullptr) rd_kafka_message_destroy(m);
      }
    } free_it{m};
    if (impl_->callback_error) std::rethrow_exception(std::exchange(impl_->callback_error, {}));
    if (impl_->rebalances != rebalances) {
      // The partitions were revoked and assigned again while polling: what was taken before
      // belongs to the old assignment. A partition assigned again is read again from the offset
      // on_assign gave, so keeping those messages would hand some out twice.
      rebalances = impl_->rebalances;
      out.clear();
    }
    if (m == nullptr) break;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Every record below m->offset has been handed out: messages, and the transaction markers
      // and aborted messages that are never handed out.
      const TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
      if (impl_->assigned.count(tp)) {
        auto& c = impl_->consumed[tp];
        c = std::max(c, m->offset);
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const std::string where = m->rkt != nullptr
                                    ? std::string(" (") + rd_kafka_topic_name(m->rkt) + " [" +
                                          std::to_string(m->partition) + "])"
                                    : std::string();
      const std::string what = std::string("consume: ") + rd_kafka_message_errstr(m) + where;
      if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char reason[512];
        rd_kafka_fatal_error(impl_->rk.get(), reason, sizeof reason);
        throw Error(what + ": " + reason, false, false, true);
      }
      if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
          m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
        // A stored offset that the partition no longer has: the topic was recreated or its data
        // deleted. Reading from elsewhere would skip or repeat messages.
        throw Error(what);
      }
      impl_->warn(what);
      continue;
    }
    out.push_back(message_from(m));
  }
  return out;
}

std::vector<TopicPartition> GroupConsumer::assignment() const {
  return {impl_->assigned.begin(), impl_->assigned.end()};
}

void GroupConsumer::seek(const std::vector<TopicPartitionOffset>& positions,
                         std::chrono::milliseconds timeout) {
  if (positions.empty()) return;
  auto list = partition_list(positions);
  check(rd_kafka_seek_partitions(impl_->rk.get(), list.get(), ms(timeout)), "seek");
  for (int i = 0; i < list->cnt; ++i) {
    if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Error(std::string("seek ") + list->elems[i].topic + " [" +
                      std::to_string(list->elems[i].partition) +
                      "]: " + rd_kafka_err2str(list->elems[i].err),
                  true);
    }
  }
  for (const auto& p : positions) impl_->consumed.erase({p.topic, p.partition});
}

std::int64_t GroupConsumer::consumed_to(const TopicPartition& partition) const {
  auto it = impl_->consumed.find(partition);
  return it == impl_->consumed.end() ? 0 : it->second;
}

void GroupConsumer::commit_async(const std::vector<TopicPartitionOffset>& offsets) {
  if (offsets.empty()) return;
  auto list = partition_list(offsets);
  rd_kafka_commit(impl_->rk.get(), list.get(), 1);
}

}  // namespace shop::infra::kafka

#include "replay/kafka_source.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>

#include "shop/events/events.h"
#include "shop/events/json.h"
#include "shop/infra/kafka.h"

namespace shop::replay {

namespace {

namespace kafka = infra::kafka;

struct Collected {
  std::int64_t position = 0;
  std::string value;  // the envelope, as the relay wrote it
  // For CSV only: the envelope's strings, taken when the message was read.
  std::string stream_id, type, occurred_at, event_id, correlation_id, causation_id;
  std::optional<std::string> actor;
  std::int64_t stream_version = 0;
  std::int32_t schema_version = 1;
};

bool any_of(const std::vector<std::string>& wanted, std::string_view value) {
  return wanted.empty() || std::find(wanted.begin(), wanted.end(), value) != wanted.end();
}

// The JSON text of the envelope's last member, "data" (the relay writes it last, as stored).
std::string_view data_of(std::string_view value) {
  const auto at = value.rfind(",\"data\":");
  if (at == std::string_view::npos || value.empty() || value.back() != '}') {
    throw std::runtime_error("a message is not an event envelope");
  }
  return value.substr(at + 8, value.size() - at - 9);
}

}  // namespace

ReplayStats replay_from_kafka(const std::string& brokers, const std::string& topic_prefix,
                              const Filter& filter, Format format, Sink& sink,
                              ProgressLine* progress) {
  // Which categories' topics to read.
  std::vector<std::string> categories = filter.categories;
  if (categories.empty() && !filter.streams.empty()) {
    for (const auto& s : filter.streams) categories.emplace_back(events::category_of(s));
  }
  if (categories.empty()) {
    for (auto c : events::all_categories()) categories.emplace_back(c);
  }
  std::sort(categories.begin(), categories.end());
  categories.erase(std::unique(categories.begin(), categories.end()), categories.end());

  // Time bounds compare as text: occurred_at always has the same fixed-width form.
  const std::string since = filter.since_micros ? format_timestamp(*filter.since_micros) : "";
  const std::string until = filter.until_micros ? format_timestamp(*filter.until_micros) : "";

  kafka::Consumer consumer({{"bootstrap.servers", brokers}});
  std::vector<kafka::TopicPartitionOffset> partitions;
  const auto timeout = std::chrono::seconds(30);
  for (const auto& c : categories) {
    const auto topic = topic_prefix + "." + c;
    const int n = consumer.partition_count(topic, timeout);
    for (int p = 0; p < n; ++p) partitions.push_back({topic, p, 0});
  }

  std::vector<Collected> collected;
  kafka::read_to_end(
      consumer, partitions,
      [&](const kafka::Message& m) {
        json::Document d;
        if (!json::parse(m.value, d).empty() || !d.IsObject() || !d.HasMember("position")) {
          throw std::runtime_error("a message of " + m.topic + " is not an event envelope");
        }
        const std::int64_t position = json::get_int(d, "position");
        if (filter.from_position && position < *filter.from_position) return;
        if (filter.to_position && position > *filter.to_position) return;
        const auto stream_id = json::get_string(d, "stream_id");
        if (!any_of(filter.streams, stream_id)) return;
        if (!any_of(filter.types, json::get_string(d, "type"))) return;
        if (!filter.categories.empty() &&
            !any_of(filter.categories, events::category_of(stream_id))) {
          return;
        }
        const auto occurred_at = json::get_string(d, "occurred_at");
        if (!since.empty() && occurred_at < since) return;
        if (!until.empty() && occurred_at >= until) return;
        Collected c;
        c.position = position;
        c.value = m.value;
        if (format == Format::kCsv) {
          c.stream_id = stream_id;
          c.type = json::get_string(d, "type");
          c.occurred_at = occurred_at;
          c.event_id = json::get_string(d, "event_id");
          c.correlation_id = json::get_string(d, "correlation_id");
          c.causation_id = json::get_string(d, "causation_id");
          if (d.HasMember("actor") && d["actor"].IsString()) c.actor = d["actor"].GetString();
          c.stream_version = json::get_int(d, "stream_version");
          c.schema_version = static_cast<std::int32_t>(json::get_int(d, "schema_version"));
        }
        collected.push_back(std::move(c));
        if (progress != nullptr) progress->update({static_cast<std::int64_t>(collected.size()), 0});
      },
      std::chrono::minutes(30));
  std::sort(collected.begin(), collected.end(),
            [](const Collected& a, const Collected& b) { return a.position < b.position; });

  std::string out(preamble(format));
  out.reserve(1 << 20);
  for (const auto& c : collected) {
    if (format == Format::kJsonLines) {
      out.append(c.value);
      out.push_back('\n');
    } else {
      Envelope e;
      e.position = c.position;
      e.stream_id = c.stream_id;
      e.stream_version = c.stream_version;
      e.type = c.type;
      e.schema_version = c.schema_version;
      e.occurred_at = c.occurred_at;
      e.event_id = c.event_id;
      e.correlation_id = c.correlation_id;
      e.causation_id = c.causation_id;
      if (c.actor) e.actor = *c.actor;
      e.data = data_of(c.value);
      append_csv_record(out, e);
    }
    if (out.size() > (1 << 20)) {
      sink.write(out);
      out.clear();
    }
  }
  sink.write(out);
  ReplayStats stats;
  stats.events = static_cast<std::int64_t>(collected.size());
  if (progress != nullptr) {
    progress->finish({stats.events, collected.empty() ? 0 : collected.back().position});
  }
  return stats;
}

}  // namespace shop::replay

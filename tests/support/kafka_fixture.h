// Kafka for tests: the throwaway broker named by TEST_KAFKA_BROKERS (scripts/test.sh starts it with
// infra/kafka/kafka.sh start-temp). A missing variable or an unreachable broker fails the test:
// tests that need Kafka never skip. Tests run in parallel against the one broker, so each makes
// its own topics, consumer groups and transactional ids with unique names.
#pragma once

#include <map>
#include <string>

namespace shop::testing {

// The bootstrap servers from TEST_KAFKA_BROKERS (e.g. "127.0.0.1:40123"), after checking, once per
// process, that a broker answers there. Throws (failing the test) when it does not.
std::string test_kafka_brokers();

// `prefix` followed by a random suffix, usable as a topic name, consumer group or transactional
// id (characters other than letters, digits and '-' in `prefix` become '-').
std::string unique_kafka_name(const std::string& prefix);

// Creates topic `unique_kafka_name(prefix)` with `partitions` partitions, replication factor 1 and
// the given topic configuration (e.g. {"retention.ms", "-1"}) through the admin API, waits until
// every partition has a leader, and returns its name. Throws (failing the test) on any error.
std::string create_test_topic(const std::string& prefix, int partitions,
                              const std::map<std::string, std::string>& config = {});

// Deletes a topic made by create_test_topic (ignores errors).
void delete_test_topic(const std::string& topic);

}  // namespace shop::testing

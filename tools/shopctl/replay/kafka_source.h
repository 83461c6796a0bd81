// Replay from Kafka: the topics the outbox relay writes (<prefix>.<category>), read from offset 0
// with a reader that joins no consumer group and commits nothing (no group is disturbed), only
// committed messages (read_committed). Each message's value is the event's envelope as the relay
// wrote it, the same bytes as a JSON line of the store replay, so for the same events both
// sources print the same output, byte for byte.
//
// Messages are in global order within a partition but the partitions interleave, so the matching
// events are collected and sorted by position before anything is written: memory grows with the
// number of matching events (the filters apply before collection; --category and --stream also
// limit the topics read).
#pragma once

#include <string>

#include "replay/format.h"
#include "replay/output.h"
#include "replay/progress.h"
#include "replay/store_source.h"

namespace shop::replay {

// Reads every topic of `topic_prefix` on the brokers named by `brokers`. Throws
// std::runtime_error when Kafka cannot be read, std::system_error when the sink fails.
ReplayStats replay_from_kafka(const std::string& brokers, const std::string& topic_prefix,
                              const Filter& filter, Format format, Sink& sink,
                              ProgressLine* progress = nullptr);

}  // namespace shop::replay

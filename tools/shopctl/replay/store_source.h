// Replay from the PostgreSQL event store: every event that is final when the replay starts,
// filtered, in ascending global position, written through the shared record format.
//
// "Final" uses the event store's horizon: pg_snapshot_xmin(pg_current_snapshot()) read by a first
// statement. Every transaction with an id below it had ended by then, so the set of events with a
// smaller tx_id is complete and can never grow; the rows are read by a second statement (a later
// snapshot, which sees all of them), ordered by position. So one replay prints exactly the events
// committed before it started, minus those of transactions that began after the oldest one still
// running then (their tx_id is at or above the horizon), and never an event out of order.
//
// A later replay can show events with positions below the last one an earlier replay printed
// (a transaction that was running at the earlier start and committed afterwards): resuming with
// --from-position <last printed + 1> can miss such events. Consumers that follow the log
// continuously use the store's global reader and its (tx_id, position) checkpoint instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replay/format.h"
#include "replay/output.h"
#include "replay/progress.h"

namespace shop::replay {

struct Filter {
  std::optional<std::int64_t> from_position;  // inclusive
  std::optional<std::int64_t> to_position;    // inclusive
  std::optional<std::int64_t> since_micros;   // occurred_at >= since (microseconds, Unix epoch)
  std::optional<std::int64_t> until_micros;   // occurred_at < until
  std::vector<std::string> streams;           // any of these stream ids
  std::vector<std::string> categories;        // any of these categories ("order" of order-<id>)
  std::vector<std::string> types;             // any of these event types
};

struct ReplayStats {
  std::int64_t events = 0;
  std::string horizon;  // the xid8 horizon the replay used, as decimal text
};

// Connects to `database_url` (libpq URL or key=value string), writes the preamble and every
// matching event to `sink`. Throws std::runtime_error on database errors (message from the
// server) and std::system_error when the sink fails.
ReplayStats replay_from_store(const std::string& database_url, const Filter& filter, Format format,
                              Sink& sink, ProgressLine* progress = nullptr);

}  // namespace shop::replay

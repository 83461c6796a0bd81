// What the query API knows about the projector's progress, and the responses it may reuse while
// that progress stands still.
//
// The projector stores its checkpoint (the last event it applied, in (transaction, position)
// order, and the highest position applied so far) in rm_checkpoints, in the same transaction as
// the read-model rows. A response rendered from the tables is therefore valid for exactly as long
// as the checkpoint does not move and the live version of the read models stays the same. The
// state keeps the checkpoint (with the version) as last observed (refreshed at most every few
// milliseconds by whichever request finds it stale), and a cache of rendered responses that is
// emptied whenever the observed checkpoint changes. Pure: no database here.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace shop::query {

struct Checkpoint {
  bool exists = false;        // false until the projector has written its first checkpoint
  std::uint64_t tx = 0;       // last_tx (xid8)
  std::int64_t position = 0;  // last_position
  std::int64_t max_position = 0;
  // The live version of the read models (a rebuild switches to a new one, whose checkpoint may
  // equal the old one's): part of what responses are valid for.
  int version = 0;

  bool operator==(const Checkpoint&) const = default;
  // True when this checkpoint is the same as `other` or later in the projector's order (a later
  // version is later: it takes over at or after the old version's place).
  bool at_or_after(const Checkpoint& other) const;
};

class ProjectionState {
 public:
  ProjectionState(std::chrono::nanoseconds refresh_interval, std::size_t cache_limit);

  struct View {
    bool known = false;  // false until a first observation
    Checkpoint checkpoint;
    std::uint64_t generation = 0;  // changes with the checkpoint; tags cached responses
  };
  View view() const;

  // True when the checkpoint should be read again now: always while nothing is known, otherwise
  // for one caller per refresh interval.
  bool claim_refresh(std::chrono::steady_clock::time_point now);

  // An observation is a read of rm_checkpoints: take a ticket before the read, then report what
  // was read. The checkpoint only moves forward, except when a read that began after the last
  // change shows an earlier one (read models rebuilt from scratch).
  std::uint64_t begin_observation();
  void observe(std::uint64_t ticket, const Checkpoint& checkpoint);

  struct Lookup {
    View view;                        // the state the answer belongs to
    std::optional<std::string> body;  // the cached response, if any
  };
  Lookup lookup(const std::string& key) const;
  // Keeps `body` for `key` if the checkpoint is still the one of `generation` (the view read
  // before the tables were). Stores nothing once the cache holds cache_limit entries.
  void store(const std::string& key, std::string body, std::uint64_t generation);
  std::size_t cached_entries() const;

 private:
  const std::int64_t refresh_interval_ns_;
  const std::size_t cache_limit_;
  std::atomic<std::int64_t> next_refresh_ns_{0};
  std::atomic<std::uint64_t> tickets_{0};
  std::atomic<bool> known_{false};  // view_.known, readable without the lock

  mutable std::shared_mutex mutex_;
  View view_;
  std::uint64_t barrier_ticket_ = 0;  // tickets issued when a checkpoint was last applied
  std::unordered_map<std::string, std::string> cache_;
};

}  // namespace shop::query

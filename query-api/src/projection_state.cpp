#include "shop/query/projection_state.h"

#include <mutex>
#include <utility>

namespace shop::query {

bool Checkpoint::at_or_after(const Checkpoint& other) const {
  if (version != other.version) return version > other.version;
  if (!other.exists) return true;
  if (!exists) return false;
  if (tx != other.tx) return tx > other.tx;
  return position >= other.position;
}

ProjectionState::ProjectionState(std::chrono::nanoseconds refresh_interval,
                                 std::size_t cache_limit)
    : refresh_interval_ns_(refresh_interval.count()), cache_limit_(cache_limit) {}

ProjectionState::View ProjectionState::view() const {
  std::shared_lock lock(mutex_);
  return view_;
}

bool ProjectionState::claim_refresh(std::chrono::steady_clock::time_point now) {
  const std::int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::int64_t due = next_refresh_ns_.load(std::memory_order_relaxed);
  if (now_ns < due) return !known_.load(std::memory_order_acquire);
  return next_refresh_ns_.compare_exchange_strong(due, now_ns + refresh_interval_ns_,
                                                  std::memory_order_relaxed);
}

std::uint64_t ProjectionState::begin_observation() {
  return tickets_.fetch_add(1, std::memory_order_relaxed) + 1;
}

void ProjectionState::observe(std::uint64_t ticket, const Checkpoint& checkpoint) {
  std::unique_lock lock(mutex_);
  const bool forward = !view_.known || checkpoint.at_or_after(view_.checkpoint);
  // Going back is believed only from a read that began after the last change was applied: an
  // earlier read may merely have finished late.
  if (!forward && ticket <= barrier_ticket_) return;
  barrier_ticket_ = tickets_.load(std::memory_order_relaxed);
  if (view_.known && checkpoint == view_.checkpoint) return;
  view_.known = true;
  known_.store(true, std::memory_order_release);
  view_.checkpoint = checkpoint;
  ++view_.generation;
  cache_.clear();
}

ProjectionState::Lookup ProjectionState::lookup(const std::string& key) const {
  std::shared_lock lock(mutex_);
  Lookup out{view_, std::nullopt};
  if (!view_.known) return out;
  if (auto it = cache_.find(key); it != cache_.end()) out.body = it->second;
  return out;
}

void ProjectionState::store(const std::string& key, std::string body, std::uint64_t generation) {
  std::unique_lock lock(mutex_);
  if (!view_.known || generation != view_.generation || cache_.size() >= cache_limit_) return;
  cache_.try_emplace(key, std::move(body));
}

std::size_t ProjectionState::cached_entries() const {
  std::shared_lock lock(mutex_);
  return cache_.size();
}

}  // namespace shop::query

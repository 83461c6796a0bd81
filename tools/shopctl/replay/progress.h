// The progress line a replay shows on stderr when stderr is a terminal: events written, the
// current rate, and an estimate of the time left from how fast the read moves through the
// position range (both smoothed over the last seconds, so a slow start does not linger).
// Disabled, it prints nothing at all (scripts and pipes see only the records and real errors).
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>

namespace shop::replay {

struct Progress {
  std::int64_t events = 0;    // records written so far
  std::int64_t position = 0;  // position of the last event read (0: none yet)
};

class ProgressLine {
 public:
  ProgressLine(std::ostream& out, bool enabled) : out_(out), enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // The first and last position the replay can reach, when known (0, 0 otherwise), for the
  // share done and the time left.
  void set_range(std::int64_t first, std::int64_t last);
  // Redraws the line at most every 250 ms; cheap to call often.
  void update(const Progress& p);
  // Replaces the line with a summary (count, time, average rate) and ends it.
  void finish(const Progress& p);

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream& out_;
  bool enabled_;
  std::int64_t range_first_ = 0, range_last_ = 0;
  Clock::time_point start_ = Clock::now();
  Clock::time_point next_draw_ = start_ + std::chrono::milliseconds(250);
  // Where the previous redraw was, and the smoothed rates since (per second; < 0: none yet).
  Clock::time_point previous_time_ = start_;
  Progress previous_{};
  double event_rate_ = -1, position_rate_ = -1;
};

}  // namespace shop::replay

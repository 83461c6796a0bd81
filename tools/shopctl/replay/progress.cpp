#include "replay/progress.h"

#include <cstdio>
#include <string>

namespace shop::replay {

namespace {

std::string grouped(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return v < 0 ? "-" + out : out;
}

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

// Exponential smoothing: each redraw's sample counts for 30 %, the past for the rest.
void smooth(double& rate, double sample) {
  rate = rate < 0 ? sample : 0.7 * rate + 0.3 * sample;
}

}  // namespace

void ProgressLine::set_range(std::int64_t first, std::int64_t last) {
  range_first_ = first;
  range_last_ = last;
}

void ProgressLine::update(const Progress& p) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (now < next_draw_) return;
  next_draw_ = now + std::chrono::milliseconds(250);
  const double dt = std::chrono::duration<double>(now - previous_time_).count();
  smooth(event_rate_, static_cast<double>(p.events - previous_.events) / dt);
  if (previous_.position > 0) {
    smooth(position_rate_, static_cast<double>(p.position - previous_.position) / dt);
  }
  previous_time_ = now;
  previous_ = p;

  std::string line = "\rreplay: " + grouped(p.events) + " events, " +
                     grouped(static_cast<std::int64_t>(event_rate_)) + "/s";
  if (range_last_ > range_first_ && p.position >= range_first_) {
    const double done = static_cast<double>(p.position - range_first_ + 1) /
                        static_cast<double>(range_last_ - range_first_ + 1);
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", done * 100);
    line += ", position " + grouped(p.position) + " of " + grouped(range_last_) + " (" + pct + ")";
    if (position_rate_ > 0) {
      line += ", ETA " + clock_text(static_cast<double>(range_last_ - p.position) / position_rate_);
    }
  }
  line += "\033[K";  // erase what a longer previous line left
  out_ << line << std::flush;
}

void ProgressLine::finish(const Progress& p) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", elapsed);
  out_ << "\rreplay: " << grouped(p.events) << " events in " << secs << " s ("
       << grouped(elapsed > 0 ? static_cast<std::int64_t>(static_cast<double>(p.events) / elapsed)
                              : p.events)
       << " events/s)\033[K\n"
       << std::flush;
}

}  // namespace shop::replay

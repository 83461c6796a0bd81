// Structured-enough logging through spdlog: one line per record, UTC timestamps, level, message.
#pragma once

#include <spdlog/spdlog.h>

namespace shop::log {

// Configures the default logger for a service (name appears in every line). Level from
// LOG_LEVEL (trace, debug, info, warn, error), default info.
void setup(const std::string& service, const std::string& level = "info");

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace shop::log

#pragma once

#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "shop/events/events.h"

namespace shop::domain {

// A rule of the domain said no. `code` is stable and machine-readable (e.g. "insufficient_stock");
// the HTTP layer maps codes to statuses in one place.
struct DomainError {
  std::string code;
  std::string message;
  std::vector<std::string> details = {};
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(DomainError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  const DomainError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, DomainError> v_;
};

using Events = std::vector<events::Event>;
// The outcome of a decision: the events to append (possibly none), or why not.
using Decision = Result<Events>;

}  // namespace shop::domain

// JSON Schema validation of request bodies and event payloads, against the schemas compiled in
// from schemas/.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shop/events/json.h"

namespace shop::infra {

class SchemaRegistry {
 public:
  // The registry of every embedded schema (parsed once; thread-safe to use).
  static const SchemaRegistry& instance();
  ~SchemaRegistry();

  bool has(std::string_view name) const;  // name: "commands/register", "events/OrderPlaced"
  std::string_view text(std::string_view name) const;
  std::vector<std::string> names() const;
  // Empty when valid; otherwise human-readable problems, each naming the field at fault.
  std::vector<std::string> validate(std::string_view name, const json::Value& doc) const;

 private:
  SchemaRegistry();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shop::infra

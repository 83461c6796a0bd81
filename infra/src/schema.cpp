#include "shop/infra/schema.h"

#include <map>
#include <mutex>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <stdexcept>

#include "shop/schemas/embedded.h"

namespace shop::infra {

struct SchemaRegistry::Impl {
  struct Entry {
    std::string_view text;
    json::Document source;
    std::unique_ptr<rapidjson::SchemaDocument> schema;
    // RapidJSON 1.1.0's regex engine (the "pattern" keyword) keeps its matching state inside the
    // compiled schema (GenericRegex::state0_/state1_/stateSet_, mutated by a const Match()): one
    // SchemaDocument must never validate on two threads at once.
    std::unique_ptr<std::mutex> lock = std::make_unique<std::mutex>();
  };
  std::map<std::string, Entry, std::less<>> entries;
};

SchemaRegistry::SchemaRegistry() : impl_(std::make_unique<Impl>()) {
  for (const auto& [path, text] : schemas::embedded()) {
    std::string name(path);
    if (name.size() > 5 && name.ends_with(".json")) name.resize(name.size() - 5);
    auto& e = impl_->entries[name];
    e.text = text;
    if (auto err = json::parse(text, e.source); !err.empty()) {
      throw std::runtime_error("schema " + name + " is not valid JSON: " + err);
    }
    e.schema = std::make_unique<rapidjson::SchemaDocument>(e.source);
  }
}

SchemaRegistry::~SchemaRegistry() = default;

const SchemaRegistry& SchemaRegistry::instance() {
  static const SchemaRegistry registry;
  return registry;
}

bool SchemaRegistry::has(std::string_view name) const {
  return impl_->entries.find(name) != impl_->entries.end();
}

std::string_view SchemaRegistry::text(std::string_view name) const {
  auto it = impl_->entries.find(name);
  return it == impl_->entries.end() ? std::string_view{} : it->second.text;
}

std::vector<std::string> SchemaRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : impl_->entries) out.push_back(k);
  return out;
}

namespace {
std::string pointer_text(const rapidjson::Pointer& p) {
  rapidjson::StringBuffer sb;
  p.StringifyUriFragment(sb);
  std::string s(sb.GetString(), sb.GetSize());
  if (!s.empty() && s[0] == '#') s.erase(0, 1);
  return s;
}

std::string field_name(const std::string& pointer) {
  return pointer.empty() ? "body" : pointer.substr(1);
}
}  // namespace

std::vector<std::string> SchemaRegistry::validate(std::string_view name,
                                                  const json::Value& doc) const {
  auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) throw std::logic_error("no schema " + std::string(name));
  std::lock_guard guard(*it->second.lock);
  rapidjson::SchemaValidator validator(*it->second.schema);
  if (doc.Accept(validator)) return {};

  const std::string keyword = validator.GetInvalidSchemaKeyword();
  const std::string where = pointer_text(validator.GetInvalidDocumentPointer());
  const json::Value* schema_node = validator.GetInvalidSchemaPointer().Get(it->second.source);
  const json::Value* doc_node = validator.GetInvalidDocumentPointer().Get(doc);
  std::vector<std::string> problems;

  // Name the exact fields for the two most common mistakes, which RapidJSON reports only at the
  // level of the enclosing object.
  if (keyword == "required" && schema_node && doc_node && doc_node->IsObject()) {
    if (const auto* req = json::member(*schema_node, "required"); req && req->IsArray()) {
      for (const auto& r : req->GetArray()) {
        if (r.IsString() && !doc_node->HasMember(r.GetString())) {
          problems.push_back((where.empty() ? "" : field_name(where) + ".") + r.GetString() +
                             ": is required");
        }
      }
    }
  } else if (keyword == "additionalProperties") {
    // RapidJSON 1.1.0 points at the unknown member itself, not at the enclosing object.
    problems.push_back(field_name(where) + ": unknown field");
  } else if (keyword == "type" && schema_node) {
    problems.push_back(field_name(where) + ": must be of type " +
                       json::get_string(*schema_node, "type", "another type"));
  } else if (keyword == "enum" && schema_node) {
    std::string allowed;
    if (const auto* e = json::member(*schema_node, "enum"); e && e->IsArray()) {
      for (const auto& v : e->GetArray()) {
        if (v.IsString()) allowed += (allowed.empty() ? "" : ", ") + std::string(v.GetString());
      }
    }
    problems.push_back(field_name(where) + ": must be one of " + allowed);
  }
  if (problems.empty()) {
    std::string hint;
    if (keyword == "pattern") hint = "has an invalid format";
    else if (keyword == "minLength") hint = "is too short";
    else if (keyword == "maxLength") hint = "is too long";
    else if (keyword == "minimum") hint = "is too small";
    else if (keyword == "maximum") hint = "is too large";
    else if (keyword == "minProperties") hint = "needs at least one field";
    else hint = "fails the '" + keyword + "' rule";
    problems.push_back(field_name(where) + ": " + hint);
  }
  return problems;
}

}  // namespace shop::infra

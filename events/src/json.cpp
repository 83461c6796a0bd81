#include "shop/events/json.h"

namespace shop::json {

std::string parse(std::string_view text, Document& doc) {
  // Default flags: one root value, nothing but white space after it.
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    return std::string(rapidjson::GetParseError_En(doc.GetParseError())) + " at offset " +
           std::to_string(doc.GetErrorOffset());
  }
  return {};
}

std::string to_string(const Value& value) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  value.Accept(writer);
  return {buffer.GetString(), buffer.GetSize()};
}

const Value* member(const Value& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string get_string(const Value& object, const char* name, std::string fallback) {
  const Value* v = member(object, name);
  return v && v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : fallback;
}

long long get_int(const Value& object, const char* name, long long fallback) {
  const Value* v = member(object, name);
  return v && v->IsInt64() ? v->GetInt64() : fallback;
}

bool get_bool(const Value& object, const char* name, bool fallback) {
  const Value* v = member(object, name);
  return v && v->IsBool() ? v->GetBool() : fallback;
}

std::string quote(std::string_view text) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace shop::json

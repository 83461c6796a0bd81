// A small field-list codec: a struct that lists its fields once (name + member pointer) gets its
// JSON form for free. Used for event payloads, which are plain data.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "shop/events/json.h"

namespace shop::codec {

struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T, class M>
struct Field {
  const char* name;
  M T::*ptr;
};
template <class T, class M>
constexpr Field<T, M> field(const char* name, M T::*ptr) {
  return {name, ptr};
}

template <class T>
concept Reflected = requires { T::fields(); };

// --- writing --------------------------------------------------------------------------------
inline void write(json::Writer& w, const std::string& v) {
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}
inline void write(json::Writer& w, std::int64_t v) { w.Int64(v); }
inline void write(json::Writer& w, std::int32_t v) { w.Int(v); }
inline void write(json::Writer& w, bool v) { w.Bool(v); }
template <class T>
void write(json::Writer& w, const std::optional<T>& v);
template <class T>
void write(json::Writer& w, const std::vector<T>& v);
template <Reflected T>
void write(json::Writer& w, const T& v);

template <class T>
void write(json::Writer& w, const std::optional<T>& v) {
  if (v) {
    write(w, *v);
  } else {
    w.Null();
  }
}
template <class T>
void write(json::Writer& w, const std::vector<T>& v) {
  w.StartArray();
  for (const auto& item : v) write(w, item);
  w.EndArray();
}
template <Reflected T>
void write(json::Writer& w, const T& v) {
  w.StartObject();
  std::apply(
      [&](const auto&... f) {
        ((w.Key(f.name), write(w, v.*(f.ptr))), ...);
      },
      T::fields());
  w.EndObject();
}

template <Reflected T>
std::string to_json(const T& v) {
  rapidjson::StringBuffer buffer;
  json::Writer w(buffer);
  write(w, v);
  return {buffer.GetString(), buffer.GetSize()};
}

// --- reading --------------------------------------------------------------------------------
inline void read(const json::Value& j, std::string& out, const char* name) {
  if (!j.IsString()) throw DecodeError(std::string(name) + ": expected a string");
  out.assign(j.GetString(), j.GetStringLength());
}
inline void read(const json::Value& j, std::int64_t& out, const char* name) {
  if (!j.IsInt64()) throw DecodeError(std::string(name) + ": expected an integer");
  out = j.GetInt64();
}
inline void read(const json::Value& j, std::int32_t& out, const char* name) {
  if (!j.IsInt()) throw DecodeError(std::string(name) + ": expected a 32-bit integer");
  out = j.GetInt();
}
inline void read(const json::Value& j, bool& out, const char* name) {
  if (!j.IsBool()) throw DecodeError(std::string(name) + ": expected a boolean");
  out = j.GetBool();
}
template <class T>
void read(const json::Value& j, std::optional<T>& out, const char* name);
template <class T>
void read(const json::Value& j, std::vector<T>& out, const char* name);
template <Reflected T>
void read(const json::Value& j, T& out, const char* name);

template <class T>
void read(const json::Value& j, std::optional<T>& out, const char* name) {
  if (j.IsNull()) {
    out.reset();
    return;
  }
  T value{};
  read(j, value, name);
  out = std::move(value);
}
template <class T>
void read(const json::Value& j, std::vector<T>& out, const char* name) {
  if (!j.IsArray()) throw DecodeError(std::string(name) + ": expected an array");
  out.clear();
  for (const auto& item : j.GetArray()) {
    T value{};
    read(item, value, name);
    out.push_back(std::move(value));
  }
}
template <Reflected T>
void read(const json::Value& j, T& out, const char* name) {
  if (!j.IsObject()) throw DecodeError(std::string(name) + ": expected an object");
  std::apply(
      [&](const auto&... f) {
        (
            [&] {
              auto it = j.FindMember(f.name);
              using M = std::remove_cvref_t<decltype(out.*(f.ptr))>;
              if (it == j.MemberEnd()) {
                if constexpr (requires(M m) { m.reset(); }) {
                  (out.*(f.ptr)).reset();  // optional fields may be absent
                } else {
                  throw DecodeError(std::string("missing field ") + f.name);
                }
              } else {
                read(it->value, out.*(f.ptr), f.name);
              }
            }(),
            ...);
      },
      T::fields());
}

template <Reflected T>
T from_json(const json::Value& j) {
  T out{};
  read(j, out, "$");
  return out;
}

}  // namespace shop::codec

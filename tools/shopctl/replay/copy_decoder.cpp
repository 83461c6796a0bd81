#include "replay/copy_decoder.h"

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace shop::replay {

namespace {

// Records are gathered into chunks of about this size before they go to the sink.
constexpr std::size_t kChunkBytes = 1 << 20;
// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch.
constexpr std::int64_t kPgEpochMicros = 946'684'800'000'000;

std::int64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<std::int64_t>(v);
}
std::int32_t be32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<std::int32_t>(v);
}
std::int16_t be16(const char* p) {
  return static_cast<std::int16_t>((static_cast<unsigned char>(p[0]) << 8) |
                                   static_cast<unsigned char>(p[1]));
}

[[noreturn]] void malformed(const char* what) {
  throw std::runtime_error(std::string("unexpected COPY data from the database: ") + what);
}

}  // namespace

CopyDecoder::CopyDecoder(Format format, Sink& sink, ProgressLine* progress)
    : format_(format), sink_(sink), progress_(progress) {
  out_.reserve(kChunkBytes + (64 << 10));
}

void CopyDecoder::feed(const char* data, std::size_t size) {
  if (!carry_.empty()) {
    carry_.append(data, size);
    const std::size_t used = consume(carry_.data(), carry_.size());
    carry_.erase(0, used);
    return;
  }
  const std::size_t used = consume(data, size);
  if (used < size) carry_.assign(data + used, size - used);
}

void CopyDecoder::finish() {
  if (!done_ || !carry_.empty()) malformed("the data ended early");
  flush();
  if (progress_) progress_->finish(stats_);
}

// Consumes whole units (header, rows, trailer) from [p, p+n); returns the bytes used.
std::size_t CopyDecoder::consume(const char* p, std::size_t n) {
  std::size_t off = 0;
  if (!header_done_) {
    // "PGCOPY\n\377\r\n\0", 32-bit flags, 32-bit length of the header extension, the extension.
    static constexpr char kSignature[] = "PGCOPY\n\377\r\n";
    if (n < 19) return 0;
    if (std::memcmp(p, kSignature, 11) != 0) malformed("bad signature");
    const std::int32_t ext = be32(p + 15);
    if (ext < 0) malformed("bad header");
    if (n < 19 + static_cast<std::size_t>(ext)) return 0;
    off = 19 + static_cast<std::size_t>(ext);
    header_done_ = true;
  }
  while (off < n) {
    if (done_) malformed("data after the trailer");
    const std::size_t used = row(p + off, n - off);
    if (used == 0) break;
    off += used;
  }
  return off;
}

// One row (or the trailer); 0 when it is not complete yet.
std::size_t CopyDecoder::row(const char* p, std::size_t n) {
  if (n < 2) return 0;
  const std::int16_t count = be16(p);
  if (count == -1) {
    done_ = true;
    return 2;
  }
  if (count != kColumns) malformed("unexpected column count");
  std::size_t off = 2;
  for (auto& field : fields_) {
    if (n - off < 4) return 0;
    const std::int32_t len = be32(p + off);
    off += 4;
    field.size = len;
    if (len < 0) {
      field.data = nullptr;
      continue;
    }
    if (n - off < static_cast<std::size_t>(len)) return 0;
    field.data = p + off;
    off += static_cast<std::size_t>(len);
  }
  emit();
  return off;
}

void CopyDecoder::emit() {
  const auto text = [](const Field& f) {
    if (f.size < 0) malformed("NULL in a NOT NULL column");
    return std::string_view(f.data, static_cast<std::size_t>(f.size));
  };
  const auto int8 = [](const Field& f) {
    if (f.size != 8) malformed("bad bigint");
    return be64(f.data);
  };
  const auto uuid = [](const Field& f, std::string& out) -> std::string_view {
    if (f.size != 16) malformed("bad uuid");
    out.clear();
    append_uuid(out, reinterpret_cast<const unsigned char*>(f.data));
    return out;
  };

  Envelope e;
  e.position = int8(fields_[0]);
  e.stream_id = text(fields_[1]);
  e.stream_version = int8(fields_[2]);
  e.type = text(fields_[3]);
  if (fields_[4].size != 4) malformed("bad integer");
  e.schema_version = be32(fields_[4].data);
  occurred_at_.clear();
  append_timestamp(occurred_at_, int8(fields_[5]) + kPgEpochMicros);
  e.occurred_at = occurred_at_;
  e.event_id = uuid(fields_[6], event_id_);
  e.correlation_id = uuid(fields_[7], correlation_id_);
  e.causation_id = uuid(fields_[8], causation_id_);
  if (fields_[9].size >= 0) e.actor = uuid(fields_[9], actor_);
  // jsonb's binary form is a version byte (1) and then its text form.
  const std::string_view data = text(fields_[10]);
  if (data.empty() || data[0] != 1) malformed("unknown jsonb format version");
  e.data = data.substr(1);

  append_record(out_, format_, e);
  ++stats_.events;
  stats_.position = e.position;
  if (out_.size() >= kChunkBytes) flush();
  if (progress_ && (stats_.events & 1023) == 0) progress_->update(stats_);
}

void CopyDecoder::flush() {
  if (out_.empty()) return;
  sink_.write(out_);
  out_.clear();
}

}  // namespace shop::replay

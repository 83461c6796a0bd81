// Decodes PostgreSQL's binary COPY stream of the replay's query (position, stream_id,
// stream_version, type, schema_version, occurred_at, event_id, correlation_id, causation_id,
// actor, data) into records, gathered into chunks of about 1 MiB for the sink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "replay/format.h"
#include "replay/output.h"
#include "replay/progress.h"

namespace shop::replay {

class CopyDecoder {
 public:
  CopyDecoder(Format format, Sink& sink, ProgressLine* progress);

  // Takes the next piece of the stream, cut anywhere. The server sends one CopyData message per
  // row (the first also carries the file header), which decodes in place; a row cut across
  // pieces goes through a carry-over buffer. Throws std::runtime_error on malformed data.
  void feed(const char* data, std::size_t size);
  // After the last piece: checks the stream ended with its trailer and flushes the records.
  void finish();

  std::int64_t events() const { return stats_.events; }

 private:
  static constexpr int kColumns = 11;
  struct Field {
    const char* data = nullptr;
    std::int32_t size = -1;  // -1: NULL
  };

  std::size_t consume(const char* p, std::size_t n);
  std::size_t row(const char* p, std::size_t n);
  void emit();
  void flush();

  Format format_;
  Sink& sink_;
  ProgressLine* progress_;
  std::string out_, carry_;
  std::string occurred_at_, event_id_, correlation_id_, causation_id_, actor_;
  Field fields_[kColumns];
  Progress stats_;
  bool header_done_ = false;
  bool done_ = false;
};

}  // namespace shop::replay

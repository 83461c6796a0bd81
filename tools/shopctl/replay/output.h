// Where replayed records go: a file descriptor (stdout), a file that appears only once complete,
// or a string (tests). Sources hand over large chunks, so a sink sees few, big writes.
#pragma once

#include <string>
#include <string_view>

namespace shop::replay {

class Sink {
 public:
  virtual ~Sink() = default;
  // Writes all of `chunk` or throws std::system_error.
  virtual void write(std::string_view chunk) = 0;
};

class StringSink final : public Sink {
 public:
  void write(std::string_view chunk) override { data.append(chunk); }
  std::string data;
};

// Writes to a descriptor it does not own (retries short writes and EINTR).
class FdSink final : public Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void write(std::string_view chunk) override;

 private:
  int fd_;
};

// The --output file. A regular file (or a new one) is written under a temporary name in the same
// folder and renamed over `path` by commit(), so an interrupted or failed replay never leaves a
// truncated file that looks complete; without commit() the temporary file is removed. Anything
// else (a FIFO, /dev/stdout) is written in place. Until then, SIGINT, SIGTERM and SIGHUP remove
// the temporary file before they end the process (for one OutputFile at a time).
class OutputFile {
 public:
  explicit OutputFile(std::string path);  // throws std::system_error
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  Sink& sink() { return sink_; }
  void commit();  // closes the file and renames it into place; throws std::system_error

 private:
  std::string path_;
  std::string temp_path_;  // empty when writing in place
  int fd_ = -1;
  bool guarded_ = false;  // the signal handlers that remove the temporary file are installed
  FdSink sink_{-1};
};

}  // namespace shop::replay

#include "replay/output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <system_error>

namespace shop::replay {

namespace {

// The temporary file of the output being written, removed when Ctrl-C (or a TERM or HUP) ends
// the process before the rename: the file would be useless, and an export can be large. Only
// async-signal-safe calls in the handler: unlink, sigaction, raise.
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
char g_temp_path[4096];
volatile std::sig_atomic_t g_temp_active = 0;
struct sigaction g_previous[std::size(kSignals)];

extern "C" void remove_temp_file_and_stop(int sig) {
  if (g_temp_active) ::unlink(g_temp_path);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);  // delivered with the default action once this handler returns
}

// Returns whether the handlers were installed (one output file at a time, path short enough).
bool guard_temp_file(const std::string& path) {
  if (g_temp_active || path.size() >= sizeof g_temp_path) return false;
  std::memcpy(g_temp_path, path.c_str(), path.size() + 1);
  g_temp_active = 1;
  struct sigaction sa {};
  sa.sa_handler = remove_temp_file_and_stop;
  sigemptyset(&sa.sa_mask);
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], nullptr, &g_previous[i]);
    // A signal the process ignores (nohup) stays ignored.
    if (g_previous[i].sa_handler != SIG_IGN) ::sigaction(kSignals[i], &sa, nullptr);
  }
  return true;
}

void unguard_temp_file() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], &g_previous[i], nullptr);
  }
  g_temp_active = 0;
}

}  // namespace

void FdSink::write(std::string_view chunk) {
  while (!chunk.empty()) {
    const ssize_t n = ::write(fd_, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "writing the output");
    }
    chunk.remove_prefix(static_cast<std::size_t>(n));
  }
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  struct stat st {};
  const bool exists = ::stat(path_.c_str(), &st) == 0;
  if (!exists || S_ISREG(st.st_mode)) {
    temp_path_ = path_ + ".partial-XXXXXX";
    fd_ = ::mkstemp(temp_path_.data());
    if (fd_ < 0) {
      const int err = errno;
      temp_path_.clear();
      throw std::system_error(err, std::generic_category(), "cannot create a file beside " + path_);
    }
    guarded_ = guard_temp_file(temp_path_);
    // mkstemp makes the file private (0600); give it the mode a plain create would have.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, exists ? (st.st_mode & 07777) : (0666 & ~mask));
  } else {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "cannot open " + path_);
    }
  }
  sink_ = FdSink(fd_);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  if (guarded_) unguard_temp_file();
}

void OutputFile::commit() {
  if (temp_path_.empty()) return;
  // No fsync: the rename is there so that a failed replay never leaves a file that looks complete,
  // not to make the export survive a power loss (which would cost a full disk flush every time).
  if (::close(fd_) != 0) {
    const int err = errno;
    fd_ = -1;
    throw std::system_error(err, std::generic_category(), "writing " + path_);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    throw std::system_error(errno, std::generic_category(), "cannot rename the output to " + path_);
  }
  temp_path_.clear();
  if (guarded_) unguard_temp_file();
  guarded_ = false;
}

}  // namespace shop::replay

// Starting the real service binaries for end-to-end tests: free ports, environment, readiness,
// clean stop (SIGTERM) and hard kill (SIGKILL).
#pragma once

#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace shop::testing {

unsigned short free_port();

class ChildProcess {
 public:
  ChildProcess(std::string binary, std::vector<std::string> args,
               std::map<std::string, std::string> env, std::string log_file);
  ~ChildProcess();  // SIGTERM, then SIGKILL after 10 s
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void terminate();  // SIGTERM and wait
  void kill();       // SIGKILL and wait
  int wait();        // exit code (128+signal when killed)
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string log_file_;
  int status_ = -1;
};

// Polls until a TCP connection to 127.0.0.1:port succeeds (true) or timeout_ms passes (false).
bool wait_for_port(unsigned short port, int timeout_ms);

// Runs a command to completion; returns its exit code and fills output with stdout+stderr.
int run_command(const std::string& binary, const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env, std::string& output);

}  // namespace shop::testing

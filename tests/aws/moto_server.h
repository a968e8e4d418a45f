// MotoServer: runs `moto_server` (the AWS emulator) on a free loopback port
// for the duration of a test and stops it afterwards.
//
// Thread-safety: not thread-safe; one owner.
#ifndef CRUNCHER_TESTS_AWS_MOTO_SERVER_H_
#define CRUNCHER_TESTS_AWS_MOTO_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

namespace cruncher::aws::testing {

class MotoServer {
 public:
  // Starts moto_server and waits until it accepts connections. Returns null
  // and sets `why` when moto_server is missing or does not come up.
  static std::unique_ptr<MotoServer> Start(std::string* why);
  ~MotoServer();  // SIGTERM, then SIGKILL after 5 s
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }

 private:
  MotoServer(pid_t pid, int port) : pid_(pid), port_(port) {}
  pid_t pid_;
  int port_;
};

// A TCP port on 127.0.0.1 that was free a moment ago; 0 if none was found.
int FreeLoopbackPort();

}  // namespace cruncher::aws::testing

#endif  // CRUNCHER_TESTS_AWS_MOTO_SERVER_H_

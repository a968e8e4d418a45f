#include "cli/shutdown.h"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "core/log.h"

namespace cruncher::cli {
namespace {

// Left for the last steps (the hand-back, the Lease's release) once the
// creates in progress are cancelled, and kept from the grace period so the
// exit beats SIGKILL.
Millis CancelAfter(Millis grace) { return grace * 2 / 3; }
constexpr Millis kExitMargin = 1'000;

Millis SteadyNow() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1'000'000;
}

const char* SignalName(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal";
}

}  // namespace

Shutdown::Shutdown(Millis grace_period) : grace_period_(grace_period) {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  watcher_ = std::thread([this] { Watch(); });
}

Shutdown::~Shutdown() {
  closing_ = true;
  // The watcher takes this signal from its sigwait and ends.
  pthread_kill(watcher_.native_handle(), SIGTERM);
  watcher_.join();
}

void Shutdown::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  signalled_.wait(lock, [this] { return stop_.stop_requested(); });
}

int Shutdown::NextSignal(Millis deadline) const {
  while (true) {
    if (deadline == 0) {
      int sig = 0;
      if (sigwait(&signals_, &sig) == 0) return sig;
      continue;
    }
    const Millis left = deadline - SteadyNow();
    if (left <= 0) return 0;
    timespec wait{static_cast<time_t>(left / 1000),
                  static_cast<long>(left % 1000) * 1'000'000};
    const int sig = sigtimedwait(&signals_, nullptr, &wait);
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
  }
}

void Shutdown::Watch() {
  int sig = NextSignal(0);
  if (closing_) return;
  if (!running_) {
    // Nothing received, created or leased yet: nothing to hand back.
    Log(LogLevel::kInfo, "stopping",
        {{"signal", SignalName(sig)}, {"during", "start-up"}});
    _exit(0);
  }
  const Millis signalled_at = SteadyNow();
  Log(LogLevel::kInfo, "stopping",
      {{"signal", SignalName(sig)},
       {"grace_period_ms", grace_period_},
       {"action",
        "no more receives; creates in progress finish; held messages go "
        "back to the queue"}});
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.request_stop();
  }
  signalled_.notify_all();

  sig = NextSignal(signalled_at + CancelAfter(grace_period_));
  if (closing_) return;
  Log(LogLevel::kWarn, "cancelling_creates",
      {{"cause", sig == 0 ? "two thirds of the grace period passed"
                          : std::string("a second ") + SignalName(sig)}});
  cancel_.request_stop();

  const Millis exit_at = signalled_at + grace_period_ - kExitMargin;
  while (true) {
    sig = NextSignal(exit_at);
    if (closing_) return;
    if (sig == 0) break;
  }
  Log(LogLevel::kError, "shutdown_timed_out",
      {{"grace_period_ms", grace_period_},
       {"action",
        "exiting before SIGKILL; messages not handed back return "
        "to the queue after their visibility timeout"}});
  _exit(1);
}

}  // namespace cruncher::cli

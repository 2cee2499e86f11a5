#include "io/signals.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

#include "io/temps.h"

namespace moe {

namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

std::atomic<bool> g_started{false};
std::atomic<int> g_received{0};
pthread_t g_waiter;

// Listening and deferral, under g_mu: the waiting thread decides under it whether to
// record, to defer or to end the process, so no section starts or ends mid-decision.
std::mutex g_mu;
int g_listening = 0, g_deferred = 0, g_pending = 0;

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : kStopSignals) sigaddset(&s, sig);
  return s;
}

[[noreturn]] void end_process(int sig) {
  temps_remove_all();
  ::_exit(128 + sig);
}

void act(int sig) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_listening > 0) {
    g_received.store(sig);
    return;
  }
  if (g_deferred > 0) {
    g_pending = sig;
    return;
  }
  end_process(sig);
}

void wait_for_signals() {
  const sigset_t s = stop_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&s, &sig) == 0) act(sig);
  }
}

// Only on a thread that has the signals unblocked (a library's own): hand the signal to
// the waiting thread, which has them blocked and takes it in sigwait.
void pass_on(int sig) { pthread_kill(g_waiter, sig); }

}  // namespace

void signals_start() {
  if (g_started.exchange(true)) return;
  const sigset_t s = stop_set();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  std::thread waiter(wait_for_signals);
  g_waiter = waiter.native_handle();
  waiter.detach();
  struct sigaction sa {};
  sa.sa_handler = pass_on;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : kStopSignals) sigaction(sig, &sa, nullptr);
}

bool signals_started() { return g_started.load(); }

void signals_unblock_for_exec() {
  const sigset_t s = stop_set();
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig : kStopSignals) sigaction(sig, &dfl, nullptr);
  pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
}

int signals_received() { return g_received.load(); }

bool signals_listening() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_listening > 0;
}

SignalsListen::SignalsListen() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_listening++ == 0) g_received.store(0);
}

SignalsListen::~SignalsListen() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_listening--;
}

SignalsDeferred::SignalsDeferred() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_deferred++;
}

SignalsDeferred::~SignalsDeferred() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (--g_deferred == 0 && g_pending != 0) end_process(g_pending);
}

}  // namespace moe

// Worker threads, one reactor each; see worker_group.hpp.
#include "core/io/worker_group.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace ringmta::io {

struct WorkerGroup::State {
  std::mutex mutex;  // start-up and shutdown only, never on the data path
  std::vector<Reactor*> reactors;
  std::atomic<bool> stop{false};
  std::string error;
};

WorkerGroup::WorkerGroup(ReactorConfig config, unsigned threads, std::vector<SocketAddress> listen)
    : config_(config),
      threads_(threads == 0 ? 1 : threads),
      listen_(std::move(listen)),
      state_(std::make_unique<State>()) {}

WorkerGroup::~WorkerGroup() {
  for (auto& per_thread : fds_) {
    for (int fd : per_thread) {
      if (fd >= 0) ::close(fd);
    }
  }
}

void WorkerGroup::bind() {
  fds_.assign(threads_, std::vector<int>(listen_.size(), -1));
  bound_ = listen_;
  for (std::size_t l = 0; l < listen_.size(); ++l) {
    for (unsigned t = 0; t < threads_; ++t) {
      // Port 0: the first socket picks a port, the others join it (SO_REUSEPORT).
      fds_[t][l] = listen_socket(bound_[l], 4096);
      if (t == 0) bound_[l] = local_address(fds_[t][l]);
    }
  }
}

std::vector<Reactor*> WorkerGroup::reactors() const {
  std::lock_guard<std::mutex> g(state_->mutex);
  return state_->reactors;
}

void WorkerGroup::stop() {
  state_->stop.store(true);
  std::lock_guard<std::mutex> g(state_->mutex);
  for (Reactor* r : state_->reactors) {
    if (r != nullptr) r->request_stop();
  }
}

void WorkerGroup::run(const SetUp& set_up, const TearDown& tear_down, bool handle_signals,
                      const Start& start) {
  if (fds_.empty()) bind();
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigset_t previous;
  if (handle_signals) pthread_sigmask(SIG_BLOCK, &signals, &previous);  // threads inherit it
  state_->reactors.assign(threads_, nullptr);
  std::atomic<unsigned> finished{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < threads_; ++t) {
    threads.emplace_back([this, t, &set_up, &tear_down, &start, &finished] {
      try {
        // Built on its own thread: the ring is single-issuer (IORING_SETUP_SINGLE_ISSUER).
        Reactor reactor(config_, t);
        std::vector<std::unique_ptr<ListenHandler>> handlers;
        for (std::size_t l = 0; l < fds_[t].size(); ++l) {
          handlers.push_back(set_up(reactor, l));
          reactor.add_listener(fds_[t][l], *handlers.back());
          fds_[t][l] = -1;  // the reactor owns it now
        }
        {
          std::lock_guard<std::mutex> g(state_->mutex);
          state_->reactors[t] = &reactor;
        }
        if (start) start(reactor);
        if (state_->stop.load()) reactor.request_stop();
        reactor.run();
        if (tear_down) tear_down(reactor);
        std::lock_guard<std::mutex> g(state_->mutex);
        state_->reactors[t] = nullptr;
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> g(state_->mutex);
        if (state_->error.empty()) state_->error = e.what();
        state_->stop.store(true);
        for (Reactor* r : state_->reactors) {
          if (r != nullptr) r->request_stop();
        }
      }
      finished.fetch_add(1);
    });
  }
  if (handle_signals) {
    // The main thread only waits for a signal (or for the workers to end on their own).
    while (finished.load() < threads_) {
      timespec wait{0, 100'000'000};
      const int sig = sigtimedwait(&signals, nullptr, &wait);
      if (sig == SIGINT || sig == SIGTERM) {
        stop();
        break;
      }
      if (state_->stop.load()) break;
    }
  }
  for (std::thread& th : threads) th.join();
  if (handle_signals) pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!state_->error.empty()) throw std::runtime_error(state_->error);
}

}  // namespace ringmta::io

// Starts one reactor per worker thread, each with its own listening socket per address
// (SO_REUSEPORT: the kernel spreads connections), and stops them all on SIGINT/SIGTERM.
// The binaries (sink, relay) describe their listeners and per-thread set-up; this runs them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/io/reactor.hpp"
#include "core/io/socket_address.hpp"

namespace ringmta::io {

class WorkerGroup {
 public:
  // Per thread, on that thread, before run(): make the ListenHandler for listener i.
  using SetUp = std::function<std::unique_ptr<ListenHandler>(Reactor&, std::size_t listener)>;
  // Per thread, on that thread, after run() returned (flush logs...).
  using TearDown = std::function<void(Reactor&)>;
  // Per thread, on that thread, after the listeners are set up and before run(): start
  // outbound work (the loadgen opens its connections here).
  using Start = std::function<void(Reactor&)>;

  WorkerGroup(ReactorConfig config, unsigned threads, std::vector<SocketAddress> listen);
  ~WorkerGroup();

  // Binds every listening socket (throws std::runtime_error naming the address); afterwards
  // bound() gives the actual addresses (ports chosen for port 0).
  void bind();
  const std::vector<SocketAddress>& bound() const { return bound_; }

  // Runs the threads until stop() or, when handle_signals, SIGINT/SIGTERM; returns when
  // every thread has finished. Throws if a thread failed to start (its reason).
  void run(const SetUp& set_up, const TearDown& tear_down, bool handle_signals,
           const Start& start = {});
  // Thread-safe; may be called before run() returns.
  void stop();
  // Reactors while running (index = thread); for metrics and cross-thread messages.
  std::vector<Reactor*> reactors() const;

 private:
  ReactorConfig config_;
  unsigned threads_;
  std::vector<SocketAddress> listen_;
  std::vector<SocketAddress> bound_;
  std::vector<std::vector<int>> fds_;  // [thread][listener]
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ringmta::io

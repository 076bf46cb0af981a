// Tasks on Boost.Asio, the way asyncio has them: a Task runs a C++20
// coroutine (a Job) step by step on an io_context, and the Loop that
// schedules it holds it only through a weak_ptr, never owning it, in its
// ready queue and in every I/O wakeup. Whoever holds the shared_ptr that
// create_task returns keeps the task alive; nothing else does.
#pragma once

#include <boost/asio.hpp>
#include <boost/system/system_error.hpp>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dropped_task {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

class Loop;
class Task;

// What a coroutine run as a task returns. Owns the coroutine frame until a
// Task takes it; the frame starts suspended.
class Job {
 public:
  struct promise_type {
    Task* task = nullptr;  // the owner of this frame, set by Task
    std::exception_ptr error;
    Job get_return_object() { return Job(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { error = std::current_exception(); }
  };
  using handle = std::coroutine_handle<promise_type>;

  Job(Job&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Job& operator=(Job&&) = delete;
  ~Job() {
    if (h_) h_.destroy();
  }
  handle release() { return std::exchange(h_, {}); }

 private:
  explicit Job(handle h) : h_(h) {}
  handle h_;
};

class Task : public std::enable_shared_from_this<Task> {
 public:
  using DoneCallback = std::function<void(const std::shared_ptr<Task>&)>;

  // `owner` (the connection) is kept alive for as long as the task is.
  Task(Loop& loop, std::string name, Job job, std::shared_ptr<void> owner);
  // Destroys the coroutine frame wherever it is suspended: its locals are
  // destroyed, the rest of its work never runs ("Task was destroyed but it
  // is pending!").
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  const std::string& name() const { return name_; }
  bool done() const { return h_.done(); }
  std::exception_ptr error() const { return h_.promise().error; }
  // Called once, when the coroutine finishes (normally or with an exception).
  void add_done_callback(DoneCallback cb) { done_callbacks_.push_back(std::move(cb)); }

  Loop& loop() { return loop_; }
  void step();  // resumes the coroutine; runs the done callbacks when it finishes

 private:
  Loop& loop_;
  std::string name_;
  Job::handle h_;
  std::shared_ptr<void> owner_;
  std::vector<DoneCallback> done_callbacks_;
};

// The scheduler. It never owns a task (asyncio: "the event loop only keeps
// weak references to tasks").
class Loop {
 public:
  struct Stats {
    std::size_t started = 0;
    std::size_t finished = 0;           // ran to the end
    std::size_t failed = 0;             // of those, ended by an exception
    std::size_t destroyed_pending = 0;  // destroyed before they finished
    std::size_t lost_wakeups = 0;       // a step or an I/O completion found its task gone
    std::size_t live = 0;               // task objects that exist now
    std::size_t peak_live = 0;
    std::string last_destroyed;         // the name of the last task destroyed pending
  };

  explicit Loop(asio::io_context& io) : io_(io) {}
  asio::io_context& context() { return io_; }

  // Schedules the task's first step, holding it weakly.
  void start(const std::shared_ptr<Task>& task);
  Stats stats();  // call on the loop's thread

  // Reported by tasks.
  void finished(const Task& task);
  void destroyed_pending(const Task& task);
  void lost_wakeup() { ++stats_.lost_wakeups; }

 private:
  asio::io_context& io_;
  std::vector<std::weak_ptr<Task>> all_;  // asyncio's weak set of all tasks
  Stats stats_;
};

// co_await async_op(initiate) inside a Job: initiate(handler) starts an Asio
// operation; the coroutine resumes with its result, or the error is thrown.
// The handler holds the task weakly, like every wakeup in this loop: if the
// task is gone when the operation completes, nothing resumes.
template <class Initiate>
struct AsyncOp {
  Initiate initiate;
  error_code ec{};
  std::size_t bytes = 0;

  bool await_ready() const noexcept { return false; }
  void await_suspend(Job::handle h) {
    Task& task = *h.promise().task;
    initiate([this, weak = task.weak_from_this(), &loop = task.loop()](error_code e, std::size_t n) {
      auto t = weak.lock();
      if (!t) return loop.lost_wakeup();
      ec = e;
      bytes = n;
      t->step();
    });
  }
  std::size_t await_resume() const {
    if (ec) throw boost::system::system_error(ec);
    return bytes;
  }
};

template <class Initiate>
AsyncOp<Initiate> async_op(Initiate initiate) {
  return {std::move(initiate)};
}

}  // namespace dropped_task

// Connection::create_task, fixed (asyncssh 2.19.0, commit bc20fb0): the
// connection keeps its tasks until they finish.
#include "connection.hpp"

namespace dropped_task {

std::shared_ptr<Task> Connection::create_task(std::string name, Job job) {
  auto task = std::make_shared<Task>(loop_, std::move(name), std::move(job), shared_from_this());
  // FIX: a strong reference in the connection's set; the done callback reaps
  // it. No cancel on close: a task whose I/O fails finishes on its own.
  tasks_.insert(task);
  task->add_done_callback([this](const std::shared_ptr<Task>& t) { tasks_.erase(t); });
  loop_.start(task);
  return task;
}

}  // namespace dropped_task

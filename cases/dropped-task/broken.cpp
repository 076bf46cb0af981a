// Connection::create_task, broken (asyncssh up to 2.18.0): nothing but the
// returned handle owns the task.
#include "connection.hpp"

namespace dropped_task {

std::shared_ptr<Task> Connection::create_task(std::string name, Job job) {
  auto task = std::make_shared<Task>(loop_, std::move(name), std::move(job), shared_from_this());
  // FLAW: the loop holds the task only weakly, and the connection not at all.
  // A caller that ignores the handle destroys the task at the end of its
  // statement, before its first step: the reply is never sent, the forward
  // never closed, and the connection never finishes.
  loop_.start(task);
  return task;
}

}  // namespace dropped_task

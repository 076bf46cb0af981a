#include "task.hpp"

#include <algorithm>

namespace dropped_task {

Task::Task(Loop& loop, std::string name, Job job, std::shared_ptr<void> owner)
    : loop_(loop), name_(std::move(name)), h_(job.release()), owner_(std::move(owner)) {
  h_.promise().task = this;
}

Task::~Task() {
  if (!h_.done()) loop_.destroyed_pending(*this);
  h_.destroy();
}

void Task::step() {
  auto self = shared_from_this();  // alive for the whole step, whoever lets go of it meanwhile
  h_.resume();
  if (!h_.done()) return;
  loop_.finished(*this);
  for (auto& cb : std::exchange(done_callbacks_, {})) cb(self);
}

void Loop::start(const std::shared_ptr<Task>& task) {
  ++stats_.started;
  std::erase_if(all_, [](const std::weak_ptr<Task>& w) { return w.expired(); });
  all_.push_back(task);
  stats_.peak_live = std::max(stats_.peak_live, all_.size());
  asio::post(io_, [this, weak = std::weak_ptr<Task>(task)] {
    if (auto t = weak.lock()) t->step();
    else lost_wakeup();
  });
}

Loop::Stats Loop::stats() {
  stats_.live = static_cast<std::size_t>(
      std::count_if(all_.begin(), all_.end(), [](const std::weak_ptr<Task>& w) { return !w.expired(); }));
  return stats_;
}

void Loop::finished(const Task& task) {
  ++stats_.finished;
  if (task.error()) ++stats_.failed;
}

void Loop::destroyed_pending(const Task& task) {
  ++stats_.destroyed_pending;
  stats_.last_destroyed = task.name();
}

}  // namespace dropped_task

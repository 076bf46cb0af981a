#include "connection.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <future>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <vector>

namespace dropped_task {

Connection::Connection(tcp::socket socket, Loop& loop, Registry& registry)
    : socket_(std::move(socket)), loop_(loop), registry_(registry) {}

void Connection::start() {
  error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);  // one small reply per request
  do_read();
}

void Connection::do_read() {
  if (reading_ || peer_eof_ || closed_ || queued_bytes_ >= max_queued_bytes) return;
  reading_ = true;
  asio::async_read_until(socket_, asio::dynamic_buffer(input_, max_line), '\n',
                         [this, self = shared_from_this()](error_code ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec == asio::error::eof) {  // a partial request at EOF is dropped
      peer_eof_ = true;
      return maybe_finish();
    }
    if (ec == asio::error::not_found) {  // max_line bytes and no newline
      input_.clear();
      if (!discarding_) {
        discarding_ = true;  // answer once, then ignore the rest until EOF
        ++unanswered_;
        answer("ERR line too long");
      }
      return do_read();
    }
    if (ec) return close();
    std::string line = input_.substr(0, n - 1);
    input_.erase(0, n);
    if (!discarding_) handle(line);
    do_read();
  });
}

namespace {
std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (ec != std::errc{} || end != s.data() + s.size() || port == 0 || port > 65535) return {};
  return static_cast<std::uint16_t>(port);
}
}  // namespace

void Connection::handle(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  auto space = line.find(' ');
  auto verb = line.substr(0, space);
  auto arg = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  ++unanswered_;
  if (verb == "PING" && !arg.empty()) {
    create_task("keepalive " + std::string(arg), reply("PONG " + std::string(arg)));
  } else if (verb == "FORWARD") {
    if (auto port = parse_port(arg)) open_forward(*port);
    else answer("ERR bad port");
  } else if (verb == "PING") {
    answer("ERR missing token");
  } else {
    answer("ERR unknown command");
  }
}

void Connection::open_forward(std::uint16_t port) {
  int id = next_forward_++;
  auto& forward = forwards_.try_emplace(id, socket_.get_executor()).first->second;
  forward.socket.async_connect({asio::ip::address_v4::loopback(), port},
                               [this, self = shared_from_this(), id](error_code ec) {
    if (closed_) return forwards_.erase(id), void();
    if (ec) {
      forwards_.erase(id);
      return answer("FORWARD " + std::to_string(id) + " failed: " + ec.message());
    }
    // The forward is open; a task finishes it (asyncssh: _finish_port_forward).
    create_task("finish forward " + std::to_string(id), finish_forward(id));
  });
}

void Connection::close_forward(int id) {
  auto it = forwards_.find(id);
  if (it == forwards_.end()) return;
  error_code ignored;
  it->second.socket.shutdown(tcp::socket::shutdown_both, ignored);
  it->second.socket.close(ignored);
  forwards_.erase(it);
}

Job Connection::reply(std::string line) {
  co_await send(std::move(line));
  request_done();
}

Job Connection::finish_forward(int id) {
  const std::string name = "FORWARD " + std::to_string(id);
  Forward& forward = forwards_.at(id);
  std::string outcome = " closed";
  try {
    co_await send(name + " open");
    for (;;) {
      auto n = co_await async_op([&](auto handler) {
        asio::async_read_until(forward.socket, asio::dynamic_buffer(forward.input, max_line), '\n',
                               std::move(handler));
      });
      std::string line = forward.input.substr(0, n - 1);
      forward.input.erase(0, n);
      co_await send("DATA " + std::to_string(id) + " " + line);
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() != asio::error::eof) outcome = " failed: " + e.code().message();
  }
  close_forward(id);
  co_await send(name + outcome);  // throws if the client is gone: the task fails, having cleaned up
  request_done();
}

void Connection::answer(std::string line) {
  enqueue(std::move(line), [this, self = shared_from_this()](error_code, std::size_t) { request_done(); });
}

void Connection::enqueue(std::string line, std::function<void(error_code, std::size_t)> done) {
  if (closed_) {
    asio::post(socket_.get_executor(), [done = std::move(done)] { done(asio::error::operation_aborted, 0); });
    return;
  }
  line += '\n';
  queued_bytes_ += line.size();
  out_.push_back({std::move(line), std::move(done)});
  do_write();
}

void Connection::do_write() {
  if (writing_ || out_.empty()) return;
  writing_ = true;
  std::vector<asio::const_buffer> lines;  // everything queued, in one write
  for (const auto& out : out_) lines.push_back(asio::buffer(out.line));
  asio::async_write(socket_, lines, [this, self = shared_from_this(), count = lines.size()](error_code ec, std::size_t) {
    writing_ = false;
    std::vector<Out> sent(std::make_move_iterator(out_.begin()), std::make_move_iterator(out_.begin() + count));
    out_.erase(out_.begin(), out_.begin() + count);
    for (const auto& out : sent) queued_bytes_ -= out.line.size();
    if (ec || closed_) {
      close();
      fail_queued();
    }
    for (auto& out : sent) out.done(ec, out.line.size());  // may resume tasks
    do_write();
    do_read();  // if it stopped for backpressure
    maybe_finish();
  });
}

void Connection::request_done() {
  --unanswered_;
  maybe_finish();
}

void Connection::maybe_finish() {
  if (closed_ || !peer_eof_ || unanswered_ > 0 || writing_ || !out_.empty()) return;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  close();
}

void Connection::close() {
  if (closed_) return;
  auto self = shared_from_this();
  closed_ = true;
  error_code ignored;
  socket_.close(ignored);
  for (auto& [id, forward] : forwards_) forward.socket.close(ignored);
  if (!writing_) fail_queued();  // otherwise the write in flight fails, and its handler does it
  registry_.erase(self);
}

void Connection::fail_queued() {
  for (auto& out : std::exchange(out_, {})) {
    asio::post(socket_.get_executor(), [done = std::move(out.done)] { done(asio::error::operation_aborted, 0); });
  }
  queued_bytes_ = 0;
}

Server::Server(Options options) {
  serve([this](tcp::socket socket) {
    auto c = std::make_shared<Connection>(std::move(socket), loop_, connections_);
    connections_.insert(c);
    c->start();
  }, std::move(options.on_accept_error));  // EMFILE, ENFILE, ENOBUFS...: it backs off instead of spinning
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  stop_serving([this] {
    for (auto& c : Registry(connections_)) c->close();
  });
}

Server::Stats Server::stats() {
  auto result = std::make_shared<std::promise<Stats>>();
  auto f = result->get_future();
  asio::post(io_, [this, result] {
    Stats s;
    s.accepted = accepted();
    s.accept_errors = accept_errors();
    s.connections = connections_.size();
    for (auto& c : connections_) {
      s.tasks_held += c->tasks_held();
      s.peak_tasks_held = std::max(s.peak_tasks_held, c->peak_tasks_held());
    }
    s.loop = loop_.stats();
    result->set_value(s);
  });
  if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    throw std::runtime_error("the server's thread did not answer within 10 s");
  return f.get();
}

}  // namespace dropped_task

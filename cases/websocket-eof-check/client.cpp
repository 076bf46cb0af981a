#include "client.hpp"

#include <iostream>
#include <vector>

#include "closecheck/closecheck.hpp"

namespace websocket_eof_check {

Logger stderr_logger() {
  return [](const std::string& line) { std::cerr << line << '\n'; };
}

// --- Loop ------------------------------------------------------------------

Loop::Loop(Options options) : options_(options) {
  protocols_[0] = {"closecheck", &Loop::callback, 0, 4096, 0, nullptr, 0};
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols_;
  info.user = this;
  info.timeout_secs = options_.timeout_secs;
  thread_ = std::make_unique<fixtures::ws::LwsThread>(info);
}

Loop::~Loop() { thread_.reset(); }

int Loop::callback(struct lws* wsi, lws_callback_reasons reason, void*, void* in, std::size_t len) {
  auto* protocol = static_cast<ResponseHandler*>(lws_get_opaque_user_data(wsi));
  return protocol ? protocol->on_event(wsi, reason, in, len) : 0;
}

// --- ResponseHandler -------------------------------------------------------

bool ResponseHandler::should_close() const {
  return should_close_ || (payload_ && !payload_->is_eof()) || upgraded_ || !error_.empty();
}

void ResponseHandler::close() {
  if (!wsi_) return;
  auto self = shared_from_this();  // WSI_DESTROY drops the loop's reference
  lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

std::string ResponseHandler::local_address() const {
  if (!wsi_) return {};
  auto fd = closecheck::inspect(lws_get_socket_fd(wsi_));
  return fd && fd->socket ? fd->socket->local : std::string();
}

std::shared_future<void> ResponseHandler::open(const std::string& host, std::uint16_t port,
                                               const std::string& path) {
  lws_client_connect_info info{};
  info.context = loop_.thread_->context();
  info.address = host.c_str();
  info.port = port;
  info.path = path.c_str();
  info.host = host.c_str();
  info.origin = host.c_str();
  info.ietf_version_or_minus_one = -1;
  info.local_protocol_name = "closecheck";
  info.opaque_user_data = this;
  info.pwsi = &wsi_;
  loop_.transports_[this] = shared_from_this();
  auto self = shared_from_this();
  if (!lws_client_connect_via_info(&info)) {
    wsi_ = nullptr;
    fail(error_.empty() ? "lws_client_connect_via_info failed" : error_);
    loop_.transports_.erase(this);
  }
  return opened_future_;
}

void ResponseHandler::fail(std::string what) {
  if (error_.empty()) error_ = std::move(what);
  if (!open_settled_) {
    open_settled_ = true;
    opened_.set_exception(std::make_exception_ptr(std::runtime_error("WebSocket connect failed: " + error_)));
  }
}

void ResponseHandler::send(std::string text) {
  if (!wsi_ || closing_) throw std::runtime_error("send on a closed WebSocket");
  outgoing_.push_back(std::move(text));
  lws_callback_on_writable(wsi_);
}

std::future<Message> ResponseHandler::receive(std::uint64_t* id) {
  std::promise<Message> promise;
  auto future = promise.get_future();
  if (receiver_) throw std::logic_error("another receive() is already waiting");
  ++receiver_id_;
  if (id) *id = receiver_id_;
  if (auto m = payload_ ? payload_->pop() : std::nullopt) {
    if (m->type == Message::Type::closed || m->type == Message::Type::error) last_ = *m;
    promise.set_value(std::move(*m));
  } else if (last_) {
    promise.set_value(*last_);
  } else {
    receiver_ = std::move(promise);  // the transport reads anyway; this only waits
  }
  return future;
}

void ResponseHandler::drop_receiver() { receiver_.reset(); }

void ResponseHandler::deliver() {
  if (!receiver_ || !payload_) return;
  auto m = payload_->pop();
  if (!m) return;
  if (m->type == Message::Type::closed || m->type == Message::Type::error) last_ = *m;
  receiver_->set_value(std::move(*m));
  drop_receiver();
}

void ResponseHandler::cancel(std::uint64_t id) {
  if (id == receiver_id_) cancel_waiting();
}

void ResponseHandler::cancel_waiting() {
  if (!receiver_) return;
  receiver_->set_exception(std::make_exception_ptr(Cancelled()));
  receiver_.reset();
}

void ResponseHandler::start_close(int code) {
  if (!wsi_ || closing_) return;
  closing_ = true;
  lws_close_reason(wsi_, static_cast<lws_close_status>(code), nullptr, 0);
  lws_callback_on_writable(wsi_);
}

void ResponseHandler::connection_lost() {
  if (lost_) return;
  lost_ = true;
  should_close_ = true;  // as aiohttp's connection_lost(): release no longer asks the queue
  if (!payload_) return;
  Message m;
  if (peer_close_code_) {
    m = {Message::Type::closed, {}, *peer_close_code_};
  } else if (!error_.empty()) {
    m = {Message::Type::error, error_};
  } else if (closing_) {
    m = {Message::Type::closed, {}, 1005};
  } else if (!partial_.empty()) {
    m = {Message::Type::error, "connection closed in the middle of a message"};
  } else {
    m = {Message::Type::error, "connection closed without a close frame"};
  }
  payload_->feed_data(std::move(m));
  payload_->feed_eof();
  deliver();
}

int ResponseHandler::on_event(struct lws* wsi, lws_callback_reasons reason, void* in, std::size_t len) {
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      upgraded_ = true;
      payload_ = make_websocket_queue();
      open_settled_ = true;
      opened_.set_value();
      break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      fail(in && len ? std::string(static_cast<const char*>(in), len)
                     : in ? std::string(static_cast<const char*>(in)) : "connection error");
      break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
      if (closing_) break;  // what arrives after we gave up on the connection
      if (lws_is_first_fragment(wsi)) {
        partial_.clear();
        partial_binary_ = lws_frame_is_binary(wsi);
      }
      partial_.append(static_cast<const char*>(in), len);
      if (partial_.size() > loop_.options().max_message) {
        fail("message too big: more than " + std::to_string(loop_.options().max_message) + " bytes");
        partial_.clear();
        start_close(LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);  // not -1 from here: lws 4.1.6 crashes
        break;
      }
      if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        payload_->feed_data({partial_binary_ ? Message::Type::binary : Message::Type::text,
                             std::move(partial_)});
        partial_.clear();
        deliver();
      }
      break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (closing_) return -1;  // lws sends the close frame set by lws_close_reason()
      if (outgoing_.empty()) break;
      auto text = std::move(outgoing_.front());
      outgoing_.pop_front();
      std::vector<unsigned char> buf(LWS_PRE + text.size());
      std::copy(text.begin(), text.end(), buf.begin() + LWS_PRE);
      if (lws_write(wsi, buf.data() + LWS_PRE, text.size(), LWS_WRITE_TEXT) < 0) return -1;
      if (!outgoing_.empty()) lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      auto* p = static_cast<const unsigned char*>(in);
      peer_close_code_ = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
      break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
      connection_lost();
      break;
    case LWS_CALLBACK_WSI_DESTROY: {  // the last word about a wsi (lws #2176, #2208)
      auto self = shared_from_this();
      wsi_ = nullptr;
      fail("no answer to the upgrade");  // lws timed it out or it ended; no-op once opened
      connection_lost();
      cancel_waiting();
      finished_promise_.set_value();
      loop_.transports_.erase(this);  // may be the last reference but for self
      break;
    }
    default:
      break;
  }
  return 0;
}

// --- Connection and Connector ---------------------------------------------

Connection::~Connection() {
  if (!protocol_) return;
  log_("Unclosed connection");
  connector_->release(protocol_, true);
}

void Connection::release() {
  if (!protocol_) return;
  connector_->release(protocol_);
  protocol_.reset();
}

void Connection::close() {
  if (!protocol_) return;
  connector_->release(protocol_, true);
  protocol_.reset();
}

Connector::~Connector() { close(); }

void Connector::close() {
  loop_.call([this] {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& p : acquired_) p->close();
    for (auto& p : pooled_) p->close();
    acquired_.clear();
    pooled_.clear();
  });
}

Connection Connector::connect(const std::string& host, std::uint16_t port, const std::string& path, Logger log) {
  auto protocol = std::make_shared<ResponseHandler>(loop_);
  {
    std::lock_guard lock(mutex_);
    acquired_.insert(protocol);
  }
  try {
    auto opened = loop_.call([&] { return protocol->open(host, port, path); });
    auto limit = std::chrono::seconds(loop_.options().timeout_secs + 5);
    if (opened.wait_for(limit) != std::future_status::ready)
      throw std::runtime_error("WebSocket connect: lws did not finish the upgrade in time");
    opened.get();
  } catch (...) {
    release(protocol, true);
    throw;
  }
  return Connection(*this, protocol, std::move(log));
}

void Connector::release(const std::shared_ptr<ResponseHandler>& protocol, bool should_close) {
  loop_.call([&] {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      acquired_.erase(protocol);  // first the pool forgets the connection,
    }
    if (should_close || protocol->should_close()) {  // then decides: close or pool
      protocol->close();
      return;
    }
    std::lock_guard lock(mutex_);
    pooled_.push_back(protocol);
  });
}

std::size_t Connector::acquired() const {
  std::lock_guard lock(mutex_);
  return acquired_.size();
}

std::size_t Connector::pooled() const {
  std::lock_guard lock(mutex_);
  return pooled_.size();
}

// --- ClientWebSocketResponse -----------------------------------------------

ClientResponse::~ClientResponse() {
  if (!connection_) return;
  try {
    connection_->release();  // not closed: back to the pool, which decides
  } catch (const std::exception& e) {
    log_(std::string("Exception ignored in ~ClientResponse(): ") + e.what());
  }
}

void ClientResponse::close() {
  if (!connection_) return;
  connection_->close();
  connection_.reset();
}

ClientWebSocketResponse::ClientWebSocketResponse(Connector& connector, Connection connection, Logger log)
    : loop_(connector.loop()), log_(std::move(log)), protocol_(connection.protocol()),
      conn_(std::make_shared<Connection>(std::move(connection))),
      response_(std::make_unique<ClientResponse>(conn_, log_)) {}

ClientWebSocketResponse::~ClientWebSocketResponse() = default;

void ClientWebSocketResponse::close_connection() {
  closed_ = true;
  if (response_) response_->close();  // closes conn_
  else conn_->close();
}

void ClientWebSocketResponse::send_str(std::string text) {
  loop_.call([&] { protocol_->send(std::move(text)); });
}

std::future<Message> ClientWebSocketResponse::receive_async() {
  return loop_.call([&] { return protocol_->receive(); });
}

ClientWebSocketResponse::ReceiveTask ClientWebSocketResponse::receive_task() {
  std::uint64_t id = 0;
  auto future = loop_.call([&] { return protocol_->receive(&id); });
  return ReceiveTask(loop_, protocol_, std::move(future), id);
}

void ClientWebSocketResponse::ReceiveTask::cancel() {
  loop_->call([&] {
    if (auto protocol = protocol_.lock()) protocol->cancel(id_);
  });
}

Message ClientWebSocketResponse::finish_if_terminal(Message m) {
  if ((m.type == Message::Type::closed || m.type == Message::Type::error) && !closed_)
    close_connection();  // as aiohttp does on a close or an error: the connection is done
  return m;
}

Message ClientWebSocketResponse::receive(std::chrono::milliseconds timeout) {
  auto future = receive_async();
  if (future.wait_for(timeout) != std::future_status::ready) {
    loop_.call([&] { protocol_->drop_receiver(); });
    if (future.wait_for(0s) != std::future_status::ready)
      throw std::runtime_error("WebSocket receive timed out");
  }
  return finish_if_terminal(future.get());
}

void ClientWebSocketResponse::close(int code) {
  if (closed_) return;
  auto finished = loop_.call([&] {
    protocol_->start_close(code);
    return protocol_->finished();
  });
  auto limit = std::chrono::seconds(loop_.options().timeout_secs + 5);
  if (finished.wait_for(limit) != std::future_status::ready)
    log_("WebSocket close: no end of the closing handshake in time; closing the transport");
  close_connection();
}

std::string ClientWebSocketResponse::local_address() {
  return loop_.call([&] { return protocol_->local_address(); });
}

std::unique_ptr<ClientWebSocketResponse> ws_connect(Connector& connector, std::uint16_t port, Logger log,
                                                    const std::string& host, const std::string& path) {
  return std::make_unique<ClientWebSocketResponse>(connector, connector.connect(host, port, path, log),
                                                   std::move(log));
}

}  // namespace websocket_eof_check

// A WebSocket client shaped like aiohttp's, on libwebsockets 4.1.
//
//   Loop                     the event loop: an lws client context on its own thread
//   Connector                the pool: the acquired set, idle connections, release()
//   Connection               one acquired connection: release() or close(); a finalizer
//   ResponseHandler          the connection's protocol: should_close(), close()
//   PayloadQueue             where received messages wait; is_eof()
//   ClientResponse           holds the connection; its destructor releases it
//   ClientWebSocketResponse  what ws_connect() returns: a ClientResponse and the connection
//
// broken.cpp and fixed.cpp each define the WebSocket payload queue; the rest
// is shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

#include "fixtures/websocket/lws_thread.hpp"

namespace websocket_eof_check {

using namespace std::chrono_literals;

struct Message {
  enum class Type { text, binary, closed, error };
  Type type = Type::error;
  std::string data;    // the payload, or what went wrong
  int close_code = 0;  // closed: the code in the peer's close frame
};

// The operation waiting for a message was cancelled (task.cancel()).
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

// Where a connection's received messages wait to be read (aiohttp's DataQueue
// interface). Loop thread only.
class PayloadQueue {
 public:
  virtual ~PayloadQueue() = default;
  virtual const char* name() const = 0;
  virtual void feed_data(Message message) = 0;
  virtual void feed_eof() = 0;  // the peer will send nothing more
  virtual std::optional<Message> pop() = 0;
  // Has the peer finished? The connector's release path asks, through
  // ResponseHandler::should_close(). A queue type that doesn't know inherits this.
  virtual bool is_eof() const {
    throw std::logic_error(std::string("'") + name() + "' object has no attribute 'is_eof'");
  }
};

// Defined by the variant (broken.cpp or fixed.cpp).
std::unique_ptr<PayloadQueue> make_websocket_queue();

using Logger = std::function<void(const std::string&)>;
Logger stderr_logger();

class ResponseHandler;

class Loop {
 public:
  struct Options {
    unsigned timeout_secs = 5;            // lws: handshake and close timeouts
    std::size_t max_message = 64 * 1024;  // a longer message is an error (1009)
  };
  Loop() : Loop(Options{}) {}
  explicit Loop(Options options);
  // Destroys the context, which closes every socket it still has.
  ~Loop();

  template <class F>
  auto call(F fn) {
    return thread_->call(std::move(fn));
  }
  const Options& options() const { return options_; }

 private:
  friend class ResponseHandler;
  static int callback(struct lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len);

  Options options_;
  lws_protocols protocols_[2]{};
  // The protocol of every connection lws still has open (asyncio's selector map).
  std::map<ResponseHandler*, std::shared_ptr<ResponseHandler>> transports_;
  std::unique_ptr<fixtures::ws::LwsThread> thread_;
};

// The connection's protocol (aiohttp's client_proto.ResponseHandler). Loop thread only.
//
// Its transport reads whatever arrives, whether or not anyone waits in
// receive(), and closes itself when the peer ends the connection: asyncio's
// selector transport, whose _read_ready() feeds data_received() and, on EOF,
// closes the transport when eof_received() returns None (aiohttp's does). A
// connection nobody tracks any more therefore lives until its peer closes.
class ResponseHandler : public std::enable_shared_from_this<ResponseHandler> {
 public:
  explicit ResponseHandler(Loop& loop) : loop_(loop) {}
  // Close rather than pool? Asks the payload queue whether the peer is done.
  bool should_close() const;
  // Closes the transport now (no close frame), like asyncio's transport.close().
  void close();
  bool is_connected() const { return wsi_ != nullptr; }
  std::string local_address() const;

  std::shared_future<void> open(const std::string& host, std::uint16_t port, const std::string& path);
  void send(std::string text);
  // A message, or one when it arrives; *id names this receive for cancel().
  std::future<Message> receive(std::uint64_t* id = nullptr);
  void drop_receiver();            // the receiver gave up waiting
  void cancel(std::uint64_t id);   // that receive, if it still waits, gets Cancelled
  void start_close(int code);      // close frame, then the closing handshake
  std::shared_future<void> finished() const { return finished_; }
  int on_event(struct lws* wsi, lws_callback_reasons reason, void* in, std::size_t len);

 private:
  void connection_lost();
  void deliver();
  void fail(std::string what);
  void cancel_waiting();

  Loop& loop_;
  struct lws* wsi_ = nullptr;
  std::unique_ptr<PayloadQueue> payload_;
  bool upgraded_ = false, should_close_ = false, lost_ = false, closing_ = false;
  std::string error_, partial_;
  bool partial_binary_ = false;
  std::optional<int> peer_close_code_;
  std::optional<Message> last_;  // closed or error: what every later receive gets
  std::deque<std::string> outgoing_;
  std::optional<std::promise<Message>> receiver_;
  std::uint64_t receiver_id_ = 0;
  std::promise<void> opened_, finished_promise_;
  std::shared_future<void> opened_future_ = opened_.get_future().share();
  std::shared_future<void> finished_ = finished_promise_.get_future().share();
  bool open_settled_ = false;
};

class Connector;

// One acquired connection (aiohttp's connector.Connection). It must not
// outlive its Connector.
class Connection {
 public:
  Connection(Connector& connector, std::shared_ptr<ResponseHandler> protocol, Logger log)
      : connector_(&connector), protocol_(std::move(protocol)), log_(std::move(log)) {}
  // Still holding its protocol when it dies (never released or closed, or a
  // release threw): logs "Unclosed connection" and hands the protocol back
  // with should_close, which closes the transport without asking the queue;
  // aiohttp's Connection.__del__. A closed connector ignores it, as there.
  ~Connection();
  Connection(Connection&&) = default;
  Connection& operator=(Connection&&) = delete;
  // Back to the connector, which pools or closes it. The connection lets go of
  // its protocol only once that returned: a throw leaves it held.
  void release();
  void close();  // back to the connector, closed
  const std::shared_ptr<ResponseHandler>& protocol() const { return protocol_; }

 private:
  Connector* connector_;
  std::shared_ptr<ResponseHandler> protocol_;
  Logger log_;
};

// The connection pool (aiohttp's BaseConnector).
class Connector {
 public:
  explicit Connector(Loop& loop) : loop_(loop) {}
  ~Connector();  // close()
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // A new TCP connection, upgraded to WebSocket, in the acquired set.
  Connection connect(const std::string& host, std::uint16_t port, const std::string& path, Logger log);
  // Takes a connection back: pooled, or closed if should_close or its protocol
  // says so. Once the connector is closed, does nothing (as aiohttp's _release).
  void release(const std::shared_ptr<ResponseHandler>& protocol, bool should_close = false);
  // Closes what it tracks, acquired and pooled (aiohttp's BaseConnector.close(),
  // what session.close() calls), and forgets it. Nothing else.
  void close();
  std::size_t acquired() const;
  std::size_t pooled() const;
  Loop& loop() { return loop_; }

 private:
  Loop& loop_;
  mutable std::mutex mutex_;
  std::set<std::shared_ptr<ResponseHandler>> acquired_;
  std::deque<std::shared_ptr<ResponseHandler>> pooled_;
  bool closed_ = false;
};

// aiohttp's ClientResponse, as far as this case needs it: it holds the
// connection, and if it dies unclosed its destructor releases it
// (ClientResponse.__del__) and logs what that throws, never throwing.
class ClientResponse {
 public:
  ClientResponse(std::shared_ptr<Connection> connection, Logger log)
      : connection_(std::move(connection)), log_(std::move(log)) {}
  ~ClientResponse();
  ClientResponse(const ClientResponse&) = delete;
  ClientResponse& operator=(const ClientResponse&) = delete;
  void close();  // the connection closes; nothing left to release

 private:
  std::shared_ptr<Connection> connection_;
  Logger log_;
};

// What ws_connect() returns (aiohttp's ClientWebSocketResponse): the
// ClientResponse (its _response) and the connection (its _conn). Not closed
// when it dies? The response dies first and releases the connection; then the
// connection, if nothing else holds it.
class ClientWebSocketResponse {
 public:
  ClientWebSocketResponse(Connector& connector, Connection connection, Logger log);
  ~ClientWebSocketResponse();
  ClientWebSocketResponse(const ClientWebSocketResponse&) = delete;
  ClientWebSocketResponse& operator=(const ClientWebSocketResponse&) = delete;

  void send_str(std::string text);
  std::future<Message> receive_async();
  // receive() as a task of its own on the loop (asyncio.create_task(ws.receive())).
  class ReceiveTask;
  ReceiveTask receive_task();
  Message receive(std::chrono::milliseconds timeout = 10s);  // throws on timeout
  void close(int code = 1000);  // the closing handshake, then the connection closes
  bool closed() const { return closed_; }
  std::string local_address();
  // The connection under the response (aiohttp's resp._conn). Its release()
  // hands it back to the pool directly: what that throws reaches the caller.
  Connection& connection() { return *conn_; }
  // del ws._response: the ClientResponse dies (and releases the connection);
  // the WebSocket, and the connection it holds, stay.
  void drop_response() { response_.reset(); }

 private:
  Message finish_if_terminal(Message m);
  void close_connection();

  Loop& loop_;
  Logger log_;
  std::shared_ptr<ResponseHandler> protocol_;
  std::shared_ptr<Connection> conn_;          // _conn
  std::unique_ptr<ClientResponse> response_;  // _response: destroyed before _conn
  bool closed_ = false;
};

// One receive() running as a task: cancel() is task.cancel(), which ends this
// receive with Cancelled; the loop, the connection and every other operation
// run on.
class ClientWebSocketResponse::ReceiveTask {
 public:
  std::future<Message>& result() { return result_; }
  void cancel();

 private:
  friend class ClientWebSocketResponse;
  ReceiveTask(Loop& loop, std::weak_ptr<ResponseHandler> protocol, std::future<Message> result, std::uint64_t id)
      : loop_(&loop), protocol_(std::move(protocol)), result_(std::move(result)), id_(id) {}
  Loop* loop_;
  std::weak_ptr<ResponseHandler> protocol_;
  std::future<Message> result_;
  std::uint64_t id_;
};

std::unique_ptr<ClientWebSocketResponse> ws_connect(Connector& connector, std::uint16_t port,
                                                    Logger log = stderr_logger(),
                                                    const std::string& host = "127.0.0.1",
                                                    const std::string& path = "/");

}  // namespace websocket_eof_check

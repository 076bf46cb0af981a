// The Boost this variant compiles against: Debian's 1.74 for broken, 1.81 for
// fixed (see CMakeLists.txt). Both the client and the server include it.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/version.hpp>

// The variant is the Boost version; make sure the build picked the right one.
// Not in a library-matrix sub-build (or with CLOSECHECK_BOOST_INCLUDE_DIR):
// there both variants build against the Boost under test.
#ifdef BEAST_WS_SSL_TEARDOWN_PINNED
static_assert(CLOSECHECK_BROKEN ? BOOST_VERSION == 107400 : BOOST_VERSION == 108100,
              "broken builds against Boost 1.74, fixed against Boost 1.81");
#endif

namespace beast_ws_ssl_teardown {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using wss_stream = websocket::stream<ssl::stream<tcp::socket>>;

}  // namespace beast_ws_ssl_teardown

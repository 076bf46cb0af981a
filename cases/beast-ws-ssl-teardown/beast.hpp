// The Boost this variant compiles against, and its WebSocket-over-TLS
// teardown: broken is Debian's Boost 1.74 as it is; fixed-overlay the same
// Boost 1.74 with PR #2025's teardown (ssl_teardown_overlay.hpp); fixed is
// Boost 1.81, which has the PR (see CMakeLists.txt). Both the client and the
// server include it.
#pragma once

#ifdef BEAST_WS_SSL_TEARDOWN_OVERLAY
#include "ssl_teardown_overlay.hpp"  // first: it takes the place of Beast's own bodies
#endif

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/version.hpp>

// The variant is the Boost version (and the overlay); make sure the build
// picked the right one. Not in a library-matrix sub-build (or with
// CLOSECHECK_BOOST_INCLUDE_DIR): there every variant builds against the Boost
// under test, and the overlay applies only to a Beast without the fix.
#ifdef BEAST_WS_SSL_TEARDOWN_PINNED
#ifdef BEAST_WS_SSL_TEARDOWN_OVERLAY
#ifndef BEAST_WS_SSL_TEARDOWN_OVERLAY_APPLIED
#error "fixed-overlay: the overlay did not apply (a Beast that already has the fix?)"
#endif
#endif
static_assert(BOOST_VERSION == BEAST_WS_SSL_TEARDOWN_PINNED,
              "broken and fixed-overlay build against Boost 1.74, fixed against Boost 1.81");
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

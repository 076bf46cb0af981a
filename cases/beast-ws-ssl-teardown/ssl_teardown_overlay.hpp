// The fixed-overlay variant: Boost 1.74 with the fix of boostorg/beast PR
// #2025 (Beast 301, Boost 1.75) and nothing else. The PR changed the bodies
// of Beast's teardown and async_teardown for ssl::stream, which
// boost/beast/websocket/impl/ssl.hpp defines; this header is that file's
// place in the build. It defines the impl header's include guard, so that
// <boost/beast/websocket/ssl.hpp> declares the two templates as usual but
// does not pull in Beast 1.74's bodies, and then defines them with the fix:
// the same templates, the same signatures, every caller in Beast unchanged.
// Written for this case from the PR's description and changelog, not copied.
//
// It must come before anything that includes <boost/beast/websocket/ssl.hpp>
// (beast.hpp includes it first), or a program would hold two definitions of
// one template. On a Beast that already has the fix (301 and later, e.g. the
// library matrix's Boost 1.81 column) it does nothing: the library's own
// teardown is the fixed one.
#pragma once

#include <boost/beast/version.hpp>

#if BOOST_BEAST_VERSION < 301

#ifdef BOOST_BEAST_WEBSOCKET_SSL_HPP
#error "ssl_teardown_overlay.hpp must be included before <boost/beast/websocket/ssl.hpp>"
#endif
#define BOOST_BEAST_WEBSOCKET_IMPL_SSL_HPP  // Beast 1.74's bodies: left out

#include <utility>

#include <boost/asio/compose.hpp>
#include <boost/beast/websocket/ssl.hpp>       // the declarations (role_type role, ssl::stream&, ...)
#include <boost/beast/websocket/teardown.hpp>  // the TCP teardown: shutdown, drain to EOF, close

#define BEAST_WS_SSL_TEARDOWN_OVERLAY_APPLIED 1

namespace boost {
namespace beast {

template<class AsyncStream>
void
teardown(
    role_type role,
    net::ssl::stream<AsyncStream>& stream,
    error_code& ec)
{
    stream.shutdown(ec);
    using websocket::teardown;                        // FIX: then tear down the layer under TLS,
    error_code tcp_ec;                                //      as over plain TCP: shutdown, drain, close,
    teardown(role, stream.next_layer(), tcp_ec);      //      whether or not the TLS shutdown succeeded;
    if(! ec)                                          //      the first error is the result
        ec = tcp_ec;
}

namespace detail {

// async_teardown's steps: the TLS shutdown, then the next layer's teardown.
template<class AsyncStream>
class ssl_teardown_op
{
public:
    ssl_teardown_op(net::ssl::stream<AsyncStream>& stream, role_type role)
        : stream_(stream), role_(role)
    {
    }

    template<class Self>
    void
    operator()(Self& self)
    {
        stream_.async_shutdown(std::move(self));
    }

    template<class Self>
    void
    operator()(Self& self, error_code ec)
    {
        if(! tls_done_)
        {
            tls_done_ = true;                         // FIX: the TLS shutdown is done (or failed):
            tls_ec_ = ec;                             //      keep its result and go on
            using websocket::async_teardown;          //      to the next layer's teardown
            return async_teardown(role_, stream_.next_layer(), std::move(self));
        }
        self.complete(tls_ec_ ? tls_ec_ : ec);        // FIX: complete with the first error
    }

private:
    net::ssl::stream<AsyncStream>& stream_;
    role_type role_;
    bool tls_done_ = false;
    error_code tls_ec_;
};

} // detail

template<
    class AsyncStream,
    class TeardownHandler>
void
async_teardown(
    role_type role,
    net::ssl::stream<AsyncStream>& stream,
    TeardownHandler&& handler)
{
    net::async_compose<TeardownHandler, void(error_code)>(  // FIX: a composed operation
        detail::ssl_teardown_op<AsyncStream>(stream, role), handler, stream);
}

} // beast
} // boost

#endif  // BOOST_BEAST_VERSION < 301

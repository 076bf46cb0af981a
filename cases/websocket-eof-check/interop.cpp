// websocket-eof-check against a WebSocket server not written here.
#include <gtest/gtest.h>

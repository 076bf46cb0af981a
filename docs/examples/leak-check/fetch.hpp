#pragma once
#include <string>

// Connects to 127.0.0.1:port, sends request, returns the first reply line.
std::string fetch_line(unsigned short port, const std::string& request);
// The same, but forgets to close the socket when the reply is empty.
std::string fetch_line_leaky(unsigned short port, const std::string& request);

// closecheck run|watch: argument parsing and the exit status 2 for bad input.
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string_view>

#include "cli.hpp"

namespace {

using closecheck::cli::Error;

constexpr const char* usage =
    "usage: closecheck run [--json] [--strict] [--ignore PATTERN]... [--settle MS]\n"
    "                      [--fail-on findings|leaks|close-wait|none] [--output FILE]\n"
    "                      [--open-sites on|off] [--frames N] [--ignore-opened-in GLOB]...\n"
    "                      -- PROGRAM [ARGS...]\n"
    "       closecheck watch [--interval MS] [--samples N] (-- PROGRAM [ARGS...] | --pid PID)\n"
    "\n"
    "run    runs PROGRAM, follows its children, and reports TCP sockets left in\n"
    "       CLOSE_WAIT (at a process's exit, or when its server closes its listener) and\n"
    "       sockets a process got across exec and kept after their owner closed them.\n"
    "       --strict adds every other fd a process holds when it exits (never stdio, nor\n"
    "       what the program started with, nor an fd its parent still holds).\n"
    "       Each finding names where the fd was opened (file:line function, then N\n"
    "       frames, default 3) in a dynamically linked program; a close of an fd that\n"
    "       was not open (a double close) is a finding too.\n"
    "       Exit status: the program's own failure (its code, or 128+signal), else 1 for\n"
    "       findings (--fail-on), else 0; 2 for closecheck's own errors.\n"
    "watch  samples fds by kind and TCP sockets by state every MS (default 1000) and\n"
    "       flags monotonic growth at the end (exit status 1).\n";

// The value of --opt VALUE or --opt=VALUE; advances i.
std::string_view value(int argc, char** argv, int& i, std::string_view opt) {
  std::string_view arg = argv[i];
  if (arg.size() > opt.size() && arg[opt.size()] == '=') return arg.substr(opt.size() + 1);
  if (i + 1 >= argc) throw Error(std::string(opt) + " needs a value");
  return argv[++i];
}

bool is(std::string_view arg, std::string_view opt) {
  return arg == opt || (arg.starts_with(opt) && arg.size() > opt.size() && arg[opt.size()] == '=');
}

long number(std::string_view text, std::string_view opt, long min, long max) {
  long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max)
    throw Error(std::string(opt) + ": '" + std::string(text) + "' is not a whole number from " +
                std::to_string(min) + " to " + std::to_string(max));
  return n;
}

// The program after the options: after "--", or the first non-option.
std::vector<std::string> program(int argc, char** argv, int i) {
  if (i < argc && std::string_view(argv[i]) == "--") ++i;
  std::vector<std::string> out(argv + i, argv + argc);
  return out;
}

[[noreturn]] void unknown(const char* command, std::string_view arg) {
  throw Error(std::string(command) + ": unknown option '" + std::string(arg) +
              "' (closecheck --help lists the options)");
}

int run_command(int argc, char** argv) {
  closecheck::cli::RunOptions o;
  int i = 2;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--" || !arg.starts_with("-")) break;
    if (arg == "--json") {
      o.json = true;
    } else if (is(arg, "--ignore")) {
      o.ignore.emplace_back(value(argc, argv, i, "--ignore"));
    } else if (arg == "--strict") {
      o.strict = true;
    } else if (is(arg, "--settle")) {
      o.settle = std::chrono::milliseconds(number(value(argc, argv, i, "--settle"), "--settle", 0, 3600 * 1000));
    } else if (is(arg, "--open-sites")) {
      auto v = value(argc, argv, i, "--open-sites");
      if (v != "on" && v != "off") throw Error("--open-sites: '" + std::string(v) + "' is not on or off");
      o.open_sites = v == "on";
    } else if (is(arg, "--frames")) {
      o.frames = static_cast<std::size_t>(number(value(argc, argv, i, "--frames"), "--frames", 0, 64));
    } else if (is(arg, "--ignore-opened-in")) {
      o.ignore_opened_in.emplace_back(value(argc, argv, i, "--ignore-opened-in"));
    } else if (is(arg, "--output")) {
      o.output = value(argc, argv, i, "--output");
    } else if (is(arg, "--fail-on")) {
      auto v = value(argc, argv, i, "--fail-on");
      if (v == "findings") o.fail_on = closecheck::cli::FailOn::findings;
      else if (v == "leaks") o.fail_on = closecheck::cli::FailOn::leaks, o.strict = true;
      else if (v == "close-wait") o.fail_on = closecheck::cli::FailOn::close_wait;
      else if (v == "none") o.fail_on = closecheck::cli::FailOn::none;
      else throw Error("--fail-on: '" + std::string(v) + "' is not one of findings, leaks, close-wait, none");
    } else {
      unknown("run", arg);
    }
  }
  o.argv = program(argc, argv, i);
  if (o.argv.empty()) throw Error("run: no program given (closecheck run [options] -- PROGRAM [ARGS...])");
  return closecheck::cli::run(o);
}

int watch_command(int argc, char** argv) {
  closecheck::cli::WatchOptions o;
  int i = 2;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--" || !arg.starts_with("-")) break;
    if (is(arg, "--interval")) {
      o.interval = std::chrono::milliseconds(
          number(value(argc, argv, i, "--interval"), "--interval", 1, 3600 * 1000));
    } else if (is(arg, "--samples")) {
      o.samples = number(value(argc, argv, i, "--samples"), "--samples", 1, 1L << 30);
    } else if (is(arg, "--pid")) {
      o.pid = static_cast<pid_t>(number(value(argc, argv, i, "--pid"), "--pid", 1, 1L << 30));
    } else {
      unknown("watch", arg);
    }
  }
  o.argv = program(argc, argv, i);
  if (o.pid && !o.argv.empty()) throw Error("watch: give either --pid PID or -- PROGRAM, not both");
  if (!o.pid && o.argv.empty())
    throw Error("watch: no program given (closecheck watch [options] (-- PROGRAM [ARGS...] | --pid PID))");
  return closecheck::cli::watch(o);
}

}  // namespace

int main(int argc, char** argv) {
  sigprocmask(SIG_BLOCK, &closecheck::cli::handled_signals(), nullptr);
  try {
    std::string_view command = argc > 1 ? argv[1] : "";
    if (command == "-h" || command == "--help" || command == "help") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (command == "run") return run_command(argc, argv);
    if (command == "watch") return watch_command(argc, argv);
    if (command.empty()) throw Error("no command given: closecheck run|watch ... (closecheck --help)");
    throw Error("unknown command '" + std::string(command) + "': closecheck run|watch ... (closecheck --help)");
  } catch (const Error& e) {
    std::fprintf(stderr, "closecheck: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "closecheck: internal error: %s\n", e.what());
    return 2;
  }
}

// Waiting for the kernel or another thread without a sleep.
#pragma once

#include "closecheck/closecheck.hpp"  // (the declaration moves here)

// Beyond this process: every TCP socket of the network namespace (sweep) and
// the ones another process holds (held_elsewhere).
#pragma once

#include "closecheck/closecheck.hpp"  // (the declarations move here)

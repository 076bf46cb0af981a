# Shared by ci/test and ci/corpus: setup if needed, configure, build.
# CLOSECHECK_PRESET picks the CMake preset (default: ci, in build/ci).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
preset=${CLOSECHECK_PRESET:-ci}
build_dir=$root/build/$preset

source "$root/ci/timing.sh"
timed setup "$root/ci/setup"
if [ ! -f "$build_dir/build.ninja" ]; then
  timed "configure ($preset)" cmake --preset "$preset" >/dev/null
fi
timed "build ($preset)" cmake --build --preset "$preset"

# Installs closecheck from the build tree into a fresh prefix, then builds and
# tests docs/examples/leak-check against it, as a user's project would.
# -DBUILD_DIR=... -DEXAMPLE_DIR=... -DWORK_DIR=... [-DCXX_FLAGS=...]
# CXX_FLAGS are the build's own: libraries built with -fsanitize=... (the asan
# and tsan presets) link only into a program built with the same flags.
file(REMOVE_RECURSE ${WORK_DIR})
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "package test: ${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "package test: ${what}: ok")
endfunction()
step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
step("configure the example" ${CMAKE_COMMAND} -S ${EXAMPLE_DIR} -B ${WORK_DIR}/example
     -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
step("build the example" ${CMAKE_COMMAND} --build ${WORK_DIR}/example -j2)
step("test the example" ${CMAKE_CTEST_COMMAND} --test-dir ${WORK_DIR}/example --output-on-failure
     --no-tests=error)

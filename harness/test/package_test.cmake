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
     -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
step("build the example" ${CMAKE_COMMAND} --build ${WORK_DIR}/example -j2)
step("test the example" ${CMAKE_CTEST_COMMAND} --test-dir ${WORK_DIR}/example --output-on-failure
     --no-tests=error)

# The leaky tests: each report names the exact line of the accept and the
# pipe in the example's own source (found from its "site:" comments). Not in a
# ThreadSanitizer build, where the recorder stays off.
if(CXX_FLAGS MATCHES "sanitize=thread")
  return()
endif()
execute_process(COMMAND ${WORK_DIR}/example/leaky_test --closecheck_settle_ms=2000
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "package test: leaky_test passed, but it leaks:\n${out}")
endif()
file(STRINGS ${EXAMPLE_DIR}/leaky_test.cpp source)
set(n 0)
foreach(line IN LISTS source)
  math(EXPR n "${n} + 1")
  if(line MATCHES "// site: ([a-z]+)")
    set(expected "opened at ${EXAMPLE_DIR}/leaky_test.cpp:${n} ")
    string(FIND "${out}" "${expected}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "package test: the report does not name the ${CMAKE_MATCH_1} at line ${n} "
                          "('${expected}'):\n${out}")
    endif()
    message(STATUS "package test: the ${CMAKE_MATCH_1} at leaky_test.cpp:${n} is named: ok")
  endif()
endforeach()
string(FIND "${out}" "CLOSE_WAIT" at)
if(at EQUAL -1)
  message(FATAL_ERROR "package test: the accepted socket is not reported in CLOSE_WAIT:\n${out}")
endif()

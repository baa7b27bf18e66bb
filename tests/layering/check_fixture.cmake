# The layering check's own test (cmake -D FIXTURE_BUILD_DIR=... -D CXX_COMPILER=... -D GENERATOR=... -P):
# configures fixture/, a tree with six known violations and several allowed includes, runs the check on it,
# and fails unless the check fails and reports exactly those six.
cmake_minimum_required(VERSION 3.25)
set(fixture ${CMAKE_CURRENT_LIST_DIR}/fixture)
get_filename_component(cmake_dir ${CMAKE_CURRENT_LIST_DIR}/../../cmake ABSOLUTE)
file(REMOVE_RECURSE ${FIXTURE_BUILD_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${fixture} -B ${FIXTURE_BUILD_DIR} -G ${GENERATOR}
                        -D CMAKE_CXX_COMPILER=${CXX_COMPILER} -D MOESLIM_CMAKE_DIR=${cmake_dir}
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "Configuring the fixture failed:\n${output}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -D MOESLIM_LAYERING_DATA=${FIXTURE_BUILD_DIR}/layering_targets.cmake
                        -P ${cmake_dir}/check_layering.cmake
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "The layering check passed on a fixture with violations:\n${output}")
endif()
set(expected
  "src/low/low.cc includes \"high/high.h\" but target fixture_low does not link fixture_high (the high module)"
  "src/low/detail.h includes \"middle/middle.h\" but target fixture_low does not link fixture_middle (the middle module)"
  "src/high/high.cc includes \"low/low.h\" but target fixture_high does not link fixture_low (the low module)"
  "tests/common/test_helper.h includes \"low/low.h\" but target high_test does not link fixture_low (the low module)"
  "tests/plain_test.cc includes \"low/low.h\" but target plain_test does not link fixture_low (the low module)"
  "the ping and pong modules link each other (fixture_ping, fixture_pong): dependencies must point one way")
# CMake rewraps a message except its indented lines, so each violation line comes through whole.
foreach(line IN LISTS expected)
  string(FIND "${output}" "${line}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "The layering check did not report\n  ${line}\nIts output:\n${output}")
  endif()
endforeach()
string(REGEX MATCHALL "[^\n]*( includes \"| link each other )[^\n]*" reported "${output}")
list(LENGTH reported reported_count)
list(LENGTH expected expected_count)
if(NOT reported_count EQUAL expected_count)
  message(FATAL_ERROR "The layering check reported ${reported_count} violations, expected ${expected_count}:\n${output}")
endif()

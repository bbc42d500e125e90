# Configures a project that adds fota with add_subdirectory: fota builds no
# tests there, and a program linking fota::node gets none of fota's warning
# flags.
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

file(REMOVE_RECURSE "${WORK_DIR}")
run_step("configure the parent project" ${CMAKE_COMMAND}
  -S "${PARENT_DIR}" -B "${WORK_DIR}" -G "${GENERATOR}"
  -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_CXX_COMPILER=${CXX}
  -DFOTA_SOURCE_DIR=${FOTA_SOURCE_DIR})
file(READ "${WORK_DIR}/app-flags.txt" flags)
check_no_warning_flags("a program of the parent project" "${flags}")
file(STRINGS "${WORK_DIR}/CMakeCache.txt" tests REGEX "^FOTA_TESTS:")
if(NOT tests MATCHES "=OFF$")
  message(FATAL_ERROR "fota's tests are on in a parent project: ${tests}")
endif()
if(EXISTS "${WORK_DIR}/fota/tests")
  message(FATAL_ERROR "fota added its tests to a parent project")
endif()

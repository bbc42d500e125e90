# Installs fota from its build tree (the libraries already built) into a
# temporary prefix, builds examples/embed against that prefix alone, checks
# that none of fota's build flags reached it, and runs it: a node embedded
# in-process takes a task through to COMPLETED.
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")

run_step("install" ${CMAKE_COMMAND} --install "${FOTA_BINARY_DIR}"
  --prefix "${prefix}" --component fota_development)
foreach(header fota/actors/node.hpp fota/events/error.hpp fota/v1/api.pb.h
    fota/v1/api.proto)
  if(NOT EXISTS "${prefix}/include/${header}")
    message(FATAL_ERROR "not installed: include/${header}")
  endif()
endforeach()

run_step("configure the example" ${CMAKE_COMMAND}
  -S "${FOTA_SOURCE_DIR}/examples/embed" -B "${WORK_DIR}/build"
  -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" fota_dir REGEX "^fota_DIR:")
if(NOT fota_dir MATCHES "=${prefix}/")
  message(FATAL_ERROR "the example found another fota: ${fota_dir}")
endif()

file(READ "${WORK_DIR}/build/compile_commands.json" commands)
string(JSON command GET "${commands}" 0 command)
check_no_warning_flags("the example" "${command}")
check_includes_below("the example" "${command}" "${prefix}")

run_step("build the example" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("run the example" "${WORK_DIR}/build/fota-embed" "${WORK_DIR}/data" 5)
message("${step_output}")
if(NOT step_output MATCHES "TASK_STATUS_COMPLETED: 5 succeeded, 0 failed")
  message(FATAL_ERROR "the example did not complete its task")
endif()

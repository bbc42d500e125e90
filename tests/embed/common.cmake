# Helpers of the package tests (cmake -P scripts).

# Runs a command; stops the test with its output unless it exits with 0.
function(run_step what)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

# Fails when the compiler flags `flags` of a consumer hold fota's warnings.
function(check_no_warning_flags what flags)
  if(flags MATCHES "(^| )(-Wall|-Wextra|-Wno-unused-parameter)( |$)")
    message(FATAL_ERROR "${what}: fota's warning flags leak: ${flags}")
  endif()
endfunction()

# Fails when the compiler flags `flags` of a consumer name an include
# directory inside fota's source or build tree that is not below `prefix`.
function(check_includes_below what flags prefix)
  string(REGEX MATCHALL "(-I|-isystem )[^ ]+" includes "${flags}")
  foreach(inc IN LISTS includes)
    string(REGEX REPLACE "^(-I|-isystem )" "" dir "${inc}")
    string(FIND "${dir}/" "${prefix}/" below)
    string(FIND "${dir}/" "${FOTA_SOURCE_DIR}/" inside)
    if(inside EQUAL 0 AND NOT below EQUAL 0)
      message(FATAL_ERROR "${what}: include path into fota's tree: ${dir}")
    endif()
  endforeach()
endfunction()

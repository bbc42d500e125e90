# `cmake --install`: the libraries as static archives, the public headers
# under a fota/ prefix, the CMake package (fotaConfig.cmake, its version
# file, the exported targets and FindCAF.cmake) and the binaries.
#
# Components: fota_development (libraries, headers, package) and
# fota_runtime (fotad, fotactl, fota-sim, fota-mqtt).
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)

set(FOTA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/fota"
  CACHE STRING "Where the fota CMake package is installed, below the prefix")

set_target_properties(fota_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(fota_events PROPERTIES EXPORT_NAME events)
set_target_properties(fota_storage PROPERTIES EXPORT_NAME storage)
set_target_properties(fota_actors PROPERTIES EXPORT_NAME actors)
set_target_properties(fota_api_client PROPERTIES EXPORT_NAME api_client)
set_target_properties(fota_api PROPERTIES EXPORT_NAME api)
set_target_properties(fota_node PROPERTIES EXPORT_NAME node)

install(TARGETS ${FOTA_LIBRARIES} fota_node
  EXPORT fota-targets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT fota_development
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS fotad fotactl fota-sim fota-mqtt
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT fota_runtime)

# Headers. In the build tree they include each other from the source root
# ("events/error.hpp"); installed, they live below fota/ and include each
# other as "fota/events/error.hpp", so that a consumer's include path holds
# only the prefix's include directory. The generated protobuf headers are
# already fota/v1/*.pb.h; the schema goes with them.
install(CODE "
  set(fota_source_dir \"${PROJECT_SOURCE_DIR}\")
  set(fota_stage_dir \"${PROJECT_BINARY_DIR}/installed-headers\")
  set(fota_include_dir \"${CMAKE_INSTALL_INCLUDEDIR}\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/fotaInstallHeaders.cmake\")"
  COMPONENT fota_development)
install(DIRECTORY "${PROJECT_BINARY_DIR}/proto/fota/v1"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/fota"
  COMPONENT fota_development
  FILES_MATCHING PATTERN "*.pb.h")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/proto/fota/v1"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/fota"
  COMPONENT fota_development
  FILES_MATCHING PATTERN "*.proto")

# The package.
install(EXPORT fota-targets
  NAMESPACE fota::
  FILE fotaTargets.cmake
  DESTINATION "${FOTA_INSTALL_CMAKEDIR}"
  COMPONENT fota_development)
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/fotaConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/fotaConfig.cmake"
  INSTALL_DESTINATION "${FOTA_INSTALL_CMAKEDIR}")
# 0.x: a minor release may change the API.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/fotaConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/fotaConfig.cmake"
  "${PROJECT_BINARY_DIR}/fotaConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake"
  DESTINATION "${FOTA_INSTALL_CMAKEDIR}"
  COMPONENT fota_development)

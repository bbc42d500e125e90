# Run by `cmake --install` (see fotaInstall.cmake): copies the headers of
# each library folder to <prefix>/<include>/fota/<folder>/, rewriting their
# includes of each other from "events/x.hpp" to "fota/events/x.hpp".
# Expects fota_source_dir, fota_stage_dir and fota_include_dir.
foreach(folder IN ITEMS events storage actors api)
  file(GLOB headers "${fota_source_dir}/${folder}/*.hpp")
  set(staged)
  foreach(header IN LISTS headers)
    get_filename_component(name "${header}" NAME)
    file(READ "${header}" text)
    string(REGEX REPLACE "#include \"(events|storage|actors|api)/"
      "#include \"fota/\\1/" text "${text}")
    set(out "${fota_stage_dir}/${folder}/${name}")
    file(WRITE "${out}" "${text}")
    list(APPEND staged "${out}")
  endforeach()
  file(INSTALL ${staged}
    DESTINATION "${CMAKE_INSTALL_PREFIX}/${fota_include_dir}/fota/${folder}")
endforeach()

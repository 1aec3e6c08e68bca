# The fuzz targets, one a file fuzz/<name>_fuzz.cpp: LLMASSIST_FUZZ_TARGET_NAMES and, in the
# same order, LLMASSIST_FUZZ_TARGET_SOURCES. Read by fuzz/CMakeLists.txt (the libFuzzer
# programs) and tests/CMakeLists.txt (every seed and regression input in the regular suite).
file(GLOB LLMASSIST_FUZZ_TARGET_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_fuzz.cpp)
set(LLMASSIST_FUZZ_TARGET_NAMES)
foreach(source IN LISTS LLMASSIST_FUZZ_TARGET_SOURCES)
  get_filename_component(file ${source} NAME_WE)
  string(REGEX REPLACE "_fuzz$" "" name ${file})
  list(APPEND LLMASSIST_FUZZ_TARGET_NAMES ${name})
endforeach()

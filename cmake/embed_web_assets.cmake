# Writes the C++ source that holds the admin page's files (src/admin/web_assets.h), as arrays of
# bytes: binary-safe, no length limit, no delimiter to collide with. Run at build time by the
# custom command in CMakeLists.txt, whenever a file changes:
#   cmake -DASSETS="URL=FILE|URL=FILE..." -DTEMPLATE=cmake/web_assets.cpp.in -DOUTPUT=... -P this
cmake_minimum_required(VERSION 3.25)

string(REPLACE "|" ";" assets "${ASSETS}")
set(LLMASSIST_WEB_ARRAYS "")
set(LLMASSIST_WEB_TABLE "")
set(index 0)
foreach(asset IN LISTS assets)
  string(FIND "${asset}" "=" split)
  string(SUBSTRING "${asset}" 0 ${split} url)
  math(EXPR split "${split} + 1")
  string(SUBSTRING "${asset}" ${split} -1 file)

  get_filename_component(extension "${file}" LAST_EXT)
  if(extension STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(extension STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(extension STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  else()
    set(type "application/octet-stream")
  endif()

  get_filename_component(name "${file}" NAME)
  file(READ "${file}" hex HEX)
  string(LENGTH "${hex}" size)
  math(EXPR size "${size} / 2")
  # 24 bytes a line; a terminating zero so that no array is empty.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){24})" "\\1\n" bytes "${bytes}")
  string(APPEND LLMASSIST_WEB_ARRAYS
         "// ${name}\nconstexpr unsigned char kAsset${index}[] = {\n${bytes}0x00};\n\n")
  string(APPEND LLMASSIST_WEB_TABLE
         "      {\"${url}\", \"${type}\", bytes(kAsset${index}, ${size})},\n")
  math(EXPR index "${index} + 1")
endforeach()

configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)

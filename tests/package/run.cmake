# The installed package, as outside projects use it. Twice: the build tree's (static) libraries,
# and a shared build of every component made here from the sources. Each time two outside
# projects are built against the install and run:
# - consumer/ asks for every component (find_package(llmassist CONFIG REQUIRED)) and uses the
#   SQLite store;
# - core-consumer/ asks for COMPONENTS core alone, links llmassist::core, and must come out with
#   none of SQLite, libcurl, libsodium and libmicrohttpd among the libraries it needs (nor, from
#   the shared build, any llmassist library but the core's).
# The shared build links each component with -Wl,--no-undefined, so a component that uses what
# another does not export fails here. Then the pkg-config file is checked.
# Arguments: -DBUILD_DIR= -DSOURCE_DIR= -DWORK_DIR= -DGENERATOR= [-DLAUNCHER=] (a compiler
# launcher such as ccache for the shared build)
file(REMOVE_RECURSE ${WORK_DIR})

macro(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
endmacro()

# The libraries `binary` needs (its DT_NEEDED entries), as one string.
function(needed_libraries binary out_var)
  step(readelf readelf -d ${binary})
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*" lines "${out}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# Builds and runs both consumers against the install in `prefix`; `kind` names it in messages.
function(check_consumers prefix kind)
  set(app ${WORK_DIR}/${kind}-consumer)
  step(${kind}-configure ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${app}
       -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix})
  step(${kind}-build ${CMAKE_COMMAND} --build ${app})
  step(${kind}-run ${app}/consumer ${app}/consumer.db)
  if(NOT out MATCHES "^llmassist [0-9.]+: chat 1")
    message(FATAL_ERROR "the ${kind} consumer printed: ${out}")
  endif()

  set(core ${WORK_DIR}/${kind}-core-consumer)
  step(${kind}-core-configure ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/core-consumer
       -B ${core} -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix})
  step(${kind}-core-build ${CMAKE_COMMAND} --build ${core})
  step(${kind}-core-run ${core}/core-consumer)
  if(NOT out STREQUAL "echo: hello (from echo after 2 providers)\n")
    message(FATAL_ERROR "the ${kind} core consumer printed: ${out}")
  endif()
  needed_libraries(${core}/core-consumer needed)
  if(needed MATCHES "sqlite|curl|sodium|microhttpd|stemmer|llmassist_(http|sqlite|memory|providers|telegram|console|admin|bot)")
    message(FATAL_ERROR "the ${kind} core consumer needs more than the core: ${needed}")
  endif()
  if(kind STREQUAL "shared" AND NOT needed MATCHES "libllmassist_core\\.so")
    message(FATAL_ERROR "the shared core consumer does not need libllmassist_core.so: ${needed}")
  endif()
endfunction()

# 1. The build tree's libraries.
set(prefix ${WORK_DIR}/prefix)
step(install ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
check_consumers(${prefix} static)

# 2. Every component as a shared library.
set(shared_build ${WORK_DIR}/shared-build)
set(shared_prefix ${WORK_DIR}/shared-prefix)
set(launcher)
if(LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
step(shared-configure ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${shared_build} -G ${GENERATOR}
     -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release -DLLMASSIST_BUILD_TESTS=OFF
     -DLLMASSIST_BUILD_EXAMPLES=OFF -DLLMASSIST_BUILD_BENCH=OFF -DLLMASSIST_BUILD_PYTHON=OFF
     -DLLMASSIST_INSTALL=ON "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--no-undefined" ${launcher})
step(shared-build ${CMAKE_COMMAND} --build ${shared_build})
step(shared-install ${CMAKE_COMMAND} --install ${shared_build} --prefix ${shared_prefix})
check_consumers(${shared_prefix} shared)

# 3. pkg-config.
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
step(pkg-config pkg-config --cflags --libs llmassist)
string(REGEX MATCH "-I([^ \n]+)" include_flag "${out}")
if(NOT out MATCHES "-lllmassist_core" OR NOT EXISTS "${CMAKE_MATCH_1}/llmassist/status.h")
  message(FATAL_ERROR "pkg-config llmassist printed: ${out}")
endif()
message(STATUS "outside projects built and ran against the installed package, static and shared")

# Installs the library from the build tree into a scratch prefix, then configures, builds and
# runs an outside project that uses find_package(llmassist CONFIG REQUIRED), and checks the
# pkg-config file. Arguments: -DBUILD_DIR= -DSOURCE_DIR= -DWORK_DIR= -DGENERATOR=
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

macro(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
endmacro()

step(install ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
step(configure ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/app
     -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix})
step(build ${CMAKE_COMMAND} --build ${WORK_DIR}/app)
step(run ${WORK_DIR}/app/consumer ${WORK_DIR}/consumer.db)
if(NOT out MATCHES "^llmassist [0-9.]+: chat 1")
  message(FATAL_ERROR "the consumer printed: ${out}")
endif()
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
step(pkg-config pkg-config --cflags --libs llmassist)
string(REGEX MATCH "-I([^ \n]+)" include_flag "${out}")
if(NOT out MATCHES "-lllmassist" OR NOT EXISTS "${CMAKE_MATCH_1}/llmassist/status.h")
  message(FATAL_ERROR "pkg-config llmassist printed: ${out}")
endif()
message(STATUS "an outside project built and ran against the installed package")

# Build helpers shared by every target: warnings, sanitizers, the allocator and test
# registration, so that each target is set up the same way.

if(RINGMTA_SANITIZE)
  string(REPLACE ";" "," _ringmta_san "${RINGMTA_SANITIZE}")
  add_compile_options(-fsanitize=${_ringmta_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_ringmta_san})
  # The sanitizers replace malloc; mimalloc would hide heap errors from them.
  set(RINGMTA_MIMALLOC OFF CACHE BOOL "" FORCE)
endif()

if(RINGMTA_MIMALLOC)
  find_package(mimalloc REQUIRED)
endif()

# Warnings for our own targets only (not for third-party headers).
function(ringmta_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
                                           -Wimplicit-fallthrough)
  if(RINGMTA_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Links mimalloc so that it replaces malloc/new for the whole process (dynamic override:
# the shared library must be a direct dependency, hence --no-as-needed).
function(ringmta_link_allocator target)
  if(RINGMTA_MIMALLOC)
    target_link_options(${target} PRIVATE -Wl,--no-as-needed)
    target_link_libraries(${target} PRIVATE mimalloc)
    target_compile_definitions(${target} PRIVATE RINGMTA_WITH_MIMALLOC=1)
  endif()
endfunction()

# Every binary (servers, tools, benchmarks) is declared through this.
function(ringmta_add_executable name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE ringmta_core)
  ringmta_warnings(${name})
  ringmta_link_allocator(${name})
endfunction()

# One way to add a test: a GoogleTest binary registered with CTest under its name.
# Extra arguments after SOURCES are passed to the test command.
function(ringmta_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;ARGS;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ringmta_core GTest::gtest GTest::gtest_main ${T_LIBS})
  ringmta_warnings(${name})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT 600)
endfunction()

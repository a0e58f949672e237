# The reference backends (reference/glib.c, libuv.c, openmp.c): each built only when its library is found,
# each one switchable off (-DPOOLBENCH_WITH_GLIB=OFF, ...). A backend not built is not an error: the
# configure summary says why, and registry.c answers `--backend NAME` with that reason
# (POOLBENCH_MISSING_<NAME>, "GLib was not found at configure time").
#
# Each one is a module of its own, libpoolbench-<name>.so (reference/<name>.c + reference/module.c, linked
# with its library), which the core loads on first use (internal/reference.h says why, modules.c how):
# libpoolbench itself links none of GLib, libuv or libgomp. Modules are written to <build>/modules and
# installed to <libdir>/poolbench (component "library").
#
# Included by impls/CMakeLists.txt right after its source glob. Defines
# poolbench_link_reference_backends(target), which gives a core library built from POOLBENCH_IMPL_SOURCES
# the registry's definitions, where to find the modules, dlopen, and a build dependency on the modules,
# and poolbench_reference_modules(), called once the include directories are known, which adds the
# module targets.
option(POOLBENCH_WITH_GLIB "Build the glib reference backend when GLib (glib-2.0) is found" ON)
option(POOLBENCH_WITH_LIBUV "Build the libuv reference backend when libuv is found" ON)
option(POOLBENCH_WITH_OPENMP "Build the openmp reference backend when OpenMP is found" ON)

find_package(PkgConfig QUIET)
set(POOLBENCH_REFERENCE_DEFS "")
set(POOLBENCH_REFERENCE_LIBS "")


# poolbench_reference(NAME LIBRARY OPTION FOUND TARGET): records one backend as built or not, and why.
set(POOLBENCH_REFERENCE_MODULES "")   # name;target pairs of the modules to build
macro(poolbench_reference name library option found target)
  string(TOUPPER ${name} _upper)
  if(NOT ${option})
    list(APPEND POOLBENCH_REFERENCE_DEFS
         "POOLBENCH_MISSING_${_upper}=\"${library} was switched off at configure time (-D${option}=OFF)\"")
    message(STATUS "poolbench: backend '${name}' skipped: switched off (-D${option}=OFF)")
  elseif(NOT ${found})
    list(APPEND POOLBENCH_REFERENCE_DEFS "POOLBENCH_MISSING_${_upper}=\"${library} was not found at configure time\"")
    message(STATUS "poolbench: backend '${name}' skipped: ${library} not found")
  else()
    list(APPEND POOLBENCH_REFERENCE_DEFS POOLBENCH_HAVE_${_upper})
    list(APPEND POOLBENCH_REFERENCE_MODULES "${name}=${target}")
    message(STATUS "poolbench: backend '${name}' built as a module (${library})")
  endif()
endmacro()

set(_glib_found FALSE)
set(_libuv_found FALSE)
set(_openmp_found FALSE)
if(PkgConfig_FOUND AND POOLBENCH_WITH_GLIB)
  pkg_check_modules(GLIB QUIET IMPORTED_TARGET glib-2.0)
  set(_glib_found ${GLIB_FOUND})
endif()
if(PkgConfig_FOUND AND POOLBENCH_WITH_LIBUV)
  pkg_check_modules(LIBUV QUIET IMPORTED_TARGET libuv)
  set(_libuv_found ${LIBUV_FOUND})
endif()
if(POOLBENCH_WITH_OPENMP)
  find_package(OpenMP QUIET COMPONENTS C)
  set(_openmp_found ${OpenMP_C_FOUND})
endif()
poolbench_reference(glib "GLib" POOLBENCH_WITH_GLIB _glib_found PkgConfig::GLIB)
poolbench_reference(libuv "libuv" POOLBENCH_WITH_LIBUV _libuv_found PkgConfig::LIBUV)
poolbench_reference(openmp "OpenMP" POOLBENCH_WITH_OPENMP _openmp_found OpenMP::OpenMP_C)
set(POOLBENCH_MODULE_BUILD_DIR ${CMAKE_BINARY_DIR}/modules)
set(POOLBENCH_MODULE_INSTALL_DIR ${CMAKE_INSTALL_FULL_LIBDIR}/poolbench)
list(APPEND POOLBENCH_REFERENCE_DEFS "POOLBENCH_MODULE_BUILD_DIR=\"${POOLBENCH_MODULE_BUILD_DIR}\""
     "POOLBENCH_MODULE_INSTALL_DIR=\"${POOLBENCH_MODULE_INSTALL_DIR}\"")
set(POOLBENCH_MODULE_TARGETS "")
foreach(_pair ${POOLBENCH_REFERENCE_MODULES})
  string(REGEX REPLACE "=.*" "" _name "${_pair}")
  list(APPEND POOLBENCH_MODULE_TARGETS poolbench-${_name})
endforeach()

# poolbench.pc: the modules carry their libraries, so a program needs only libpoolbench (and dlopen, in
# libc since glibc 2.34; -ldl names it for older ones).
if(BUILD_SHARED_LIBS)
  set(POOLBENCH_PC_REQUIRES_LINE "")
  set(POOLBENCH_PC_LIBS_EXTRA "")
  set(POOLBENCH_PC_LIBS_PRIVATE_LINE "Libs.private: -l${CMAKE_DL_LIBS}")
else()
  set(POOLBENCH_PC_REQUIRES_LINE "")
  set(POOLBENCH_PC_LIBS_EXTRA " -l${CMAKE_DL_LIBS}")
  set(POOLBENCH_PC_LIBS_PRIVATE_LINE "")
endif()

function(poolbench_link_reference_backends target)
  target_compile_definitions(${target} PRIVATE ${POOLBENCH_REFERENCE_DEFS})
  target_link_libraries(${target} PRIVATE ${CMAKE_DL_LIBS})
  if(POOLBENCH_MODULE_TARGETS)
    add_dependencies(${target} ${POOLBENCH_MODULE_TARGETS}) # whatever links the core finds its modules built
  endif()
endfunction()

function(poolbench_reference_modules)
  foreach(_pair ${POOLBENCH_REFERENCE_MODULES})
    string(REGEX REPLACE "=.*" "" _name "${_pair}")
    string(REGEX REPLACE "^[^=]*=" "" _lib "${_pair}")
    set(_t poolbench-${_name})
    add_library(${_t} MODULE ${CMAKE_CURRENT_SOURCE_DIR}/reference/${_name}.c
                ${CMAKE_CURRENT_SOURCE_DIR}/reference/module.c)
    set_target_properties(${_t} PROPERTIES PREFIX "lib" LIBRARY_OUTPUT_DIRECTORY ${POOLBENCH_MODULE_BUILD_DIR}
                          C_VISIBILITY_PRESET hidden)
    target_include_directories(${_t} PRIVATE ${POOLBENCH_PUBLIC_INCLUDE} ${POOLBENCH_INTERNAL_INCLUDE})
    string(TOUPPER ${_name} _upper)
    target_compile_definitions(${_t} PRIVATE POOLBENCH_REFERENCE_MODULE PB_REF_MODULE_BACKEND=pb_backend_${_name})
    target_link_libraries(${_t} PRIVATE ${_lib} Threads::Threads)
    install(TARGETS ${_t} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/poolbench COMPONENT library)
  endforeach()
endfunction()

# The reference backends (glib.c, libuv.c, openmp.c): each built only when its library is found, each one
# switchable off (-DPOOLBENCH_WITH_GLIB=OFF, ...). A backend not built is not an error: the configure
# summary says why, and registry.c answers `--backend NAME` with that reason
# (POOLBENCH_MISSING_<NAME>, "GLib was not found at configure time").
#
# Included by impls/CMakeLists.txt right after its source glob: removes the sources of the backends that
# are not built from POOLBENCH_IMPL_SOURCES, and defines poolbench_link_reference_backends(target), which
# gives a library built from those sources its compile definitions and link libraries.
option(POOLBENCH_WITH_GLIB "Build the glib reference backend when GLib (glib-2.0) is found" ON)
option(POOLBENCH_WITH_LIBUV "Build the libuv reference backend when libuv is found" ON)
option(POOLBENCH_WITH_OPENMP "Build the openmp reference backend when OpenMP is found" ON)

find_package(PkgConfig QUIET)
set(POOLBENCH_REFERENCE_DEFS "")
set(POOLBENCH_REFERENCE_LIBS "")

set(POOLBENCH_PC_REFERENCE_REQUIRES "")  # pkg-config modules of the built ones (poolbench.pc)
set(POOLBENCH_PC_REFERENCE_LIBS "")      # and flags without a module (OpenMP)

# poolbench_reference(NAME LIBRARY OPTION FOUND TARGET PC): records one backend as built or not, and why.
macro(poolbench_reference name library option found target pc)
  string(TOUPPER ${name} _upper)
  if(NOT ${option})
    list(REMOVE_ITEM POOLBENCH_IMPL_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
    list(APPEND POOLBENCH_REFERENCE_DEFS
         "POOLBENCH_MISSING_${_upper}=\"${library} was switched off at configure time (-D${option}=OFF)\"")
    message(STATUS "poolbench: backend '${name}' skipped: switched off (-D${option}=OFF)")
  elseif(NOT ${found})
    list(REMOVE_ITEM POOLBENCH_IMPL_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
    list(APPEND POOLBENCH_REFERENCE_DEFS "POOLBENCH_MISSING_${_upper}=\"${library} was not found at configure time\"")
    message(STATUS "poolbench: backend '${name}' skipped: ${library} not found")
  else()
    list(APPEND POOLBENCH_REFERENCE_DEFS POOLBENCH_HAVE_${_upper})
    list(APPEND POOLBENCH_REFERENCE_LIBS ${target})
    if("${pc}" MATCHES "^-")
      string(APPEND POOLBENCH_PC_REFERENCE_LIBS " ${pc}")
    else()
      string(APPEND POOLBENCH_PC_REFERENCE_REQUIRES " ${pc}")
    endif()
    message(STATUS "poolbench: backend '${name}' built (${library})")
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
poolbench_reference(glib "GLib" POOLBENCH_WITH_GLIB _glib_found PkgConfig::GLIB glib-2.0)
poolbench_reference(libuv "libuv" POOLBENCH_WITH_LIBUV _libuv_found PkgConfig::LIBUV libuv)
poolbench_reference(openmp "OpenMP" POOLBENCH_WITH_OPENMP _openmp_found OpenMP::OpenMP_C -fopenmp)
# poolbench.pc: a static libpoolbench needs them at every link (Requires/Libs), a shared one only for
# static linking (.private).
if(BUILD_SHARED_LIBS)
  set(POOLBENCH_PC_REQUIRES_LINE "Requires.private:${POOLBENCH_PC_REFERENCE_REQUIRES}")
  set(POOLBENCH_PC_LIBS_EXTRA "")
  set(POOLBENCH_PC_LIBS_PRIVATE_LINE "Libs.private:${POOLBENCH_PC_REFERENCE_LIBS}")
else()
  set(POOLBENCH_PC_REQUIRES_LINE "Requires:${POOLBENCH_PC_REFERENCE_REQUIRES}")
  set(POOLBENCH_PC_LIBS_EXTRA "${POOLBENCH_PC_REFERENCE_LIBS}")
  set(POOLBENCH_PC_LIBS_PRIVATE_LINE "")
endif()

function(poolbench_link_reference_backends target)
  target_compile_definitions(${target} PRIVATE ${POOLBENCH_REFERENCE_DEFS})
  target_link_libraries(${target} PRIVATE ${POOLBENCH_REFERENCE_LIBS})
endfunction()

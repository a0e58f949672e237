#!/usr/bin/env bash
# test_install.sh - poolbench installed as a user gets it (issue 13, item 6), static and shared.
#
# The build under test is installed with `cmake --install BUILD --prefix DIR`; the other kind (shared when
# this build is static, and the reverse) is built from the same sources, library only, in a scratch
# directory and installed the same way (component "library"). For each: the install holds poolbench.h
# and none of the internal headers; the prefix is then moved, and through PKG_CONFIG_PATH alone
# `pkg-config --cflags --libs poolbench` must point into the moved prefix (the .pc file is relative to
# ${pcfiledir}); tests/install/installed_user.c is compiled with exactly those flags (-Wall -Wextra
# -Werror, plus this build's own C flags so sanitizer builds link), linked against the installed library
# of the right kind, and run: a spawn map of its own task, so its workers find the task through the
# installed library's registry.
set -euo pipefail
bin="${POOLBENCH_BINARY_DIR:?}"
src="${POOLBENCH_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$bin/CMakeCache.txt"; }
cc=$(cache_value CMAKE_C_COMPILER); cc=${cc:-cc}
c_flags=$(cache_value CMAKE_C_FLAGS)
this_kind=static other_kind=shared other_shared=ON
if [[ "$(cache_value BUILD_SHARED_LIBS)" =~ ^(ON|on|On|TRUE|true|True|YES|yes|Yes|Y|y|1)$ ]]; then
  this_kind=shared other_kind=static other_shared=OFF
fi

cmake --install "$bin" --prefix "$tmp/$this_kind" >/dev/null
cmake -S "$src" -B "$tmp/build-$other_kind" -DBUILD_SHARED_LIBS=$other_shared -DPOOLBENCH_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE="$(cache_value CMAKE_BUILD_TYPE)" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$c_flags" >/dev/null
cmake --build "$tmp/build-$other_kind" --target poolbench -j2 >/dev/null
cmake --install "$tmp/build-$other_kind" --prefix "$tmp/$other_kind" --component library >/dev/null

for kind in static shared; do
  installed="$tmp/$kind"
  [ -f "$installed/include/poolbench.h" ] || fail "$kind: no include/poolbench.h in the install"
  # poolbench.h is the one public header: whatever else ends in .h (impls/internal/*, testutil.h) is internal.
  found=$(find "$installed" -name '*.h' ! -path "$installed/include/poolbench.h")
  [ -z "$found" ] || fail "$kind: the install holds internal headers: $found"

  prefix="$tmp/$kind-moved"
  mv "$installed" "$prefix"
  pc=$(find "$prefix" -name poolbench.pc)
  [ -n "$pc" ] || fail "$kind: no poolbench.pc in the install"
  export PKG_CONFIG_PATH="${pc%/poolbench.pc}"
  [ "$(realpath "$(pkg-config --variable=prefix poolbench)")" = "$prefix" ] ||
    fail "$kind: poolbench.pc names prefix '$(pkg-config --variable=prefix poolbench)', not the moved install '$prefix'"
  libdir=$(realpath "$(pkg-config --variable=libdir poolbench)")
  case "$kind" in
    static) [ -f "$libdir/libpoolbench.a" ] && ! ls "$libdir"/libpoolbench.so* >/dev/null 2>&1 ||
              fail "static: $libdir does not hold libpoolbench.a alone: $(ls "$libdir")" ;;
    shared) [ -e "$libdir/libpoolbench.so" ] && [ ! -e "$libdir/libpoolbench.a" ] ||
              fail "shared: $libdir does not hold libpoolbench.so alone: $(ls "$libdir")" ;;
  esac

  read -r -a pc_flags <<<"$(pkg-config --cflags --libs poolbench)"
  read -r -a extra_flags <<<"$c_flags"
  "$cc" -Wall -Wextra -Werror "${extra_flags[@]}" -o "$tmp/user-$kind" "$src/tests/install/installed_user.c" \
    "${pc_flags[@]}" || fail "$kind: cannot build a program with: pkg-config --cflags --libs poolbench"

  linked=$(LD_LIBRARY_PATH="$libdir" ldd "$tmp/user-$kind" | grep libpoolbench || true)
  case "$kind" in
    static) [ -z "$linked" ] || fail "static: the program loads a shared libpoolbench: $linked" ;;
    shared) [[ "$linked" == *"=> $libdir/libpoolbench.so"* ]] ||
              fail "shared: the program does not load the installed libpoolbench.so: '$linked'" ;;
  esac
  out=$(env -u POOLBENCH_WORKER_PROGRAM LD_LIBRARY_PATH="$libdir" "$tmp/user-$kind") ||
    fail "$kind: the installed program exited $?: $out"
  [ "$out" = "ok 100" ] || fail "$kind: the installed program printed '$out', not 'ok 100'"
  echo "$kind: built with $(pkg-config --cflags --libs poolbench | sed "s|$prefix|PREFIX|g"), spawn map ok"

  # The reference backends are modules installed beside the library (<libdir>/poolbench). A shared
  # libpoolbench finds them there by itself, wherever the prefix moved (LD_DEBUG names the file loaded);
  # a static one is pointed there with POOLBENCH_MODULE_DIR (its compiled-in install directory is the
  # configured prefix, not this moved one).
  if [ -e "$bin/modules/libpoolbench-glib.so" ]; then
    [ -e "$libdir/poolbench/libpoolbench-glib.so" ] || fail "$kind: no poolbench/libpoolbench-glib.so in $libdir"
    if [ "$kind" = shared ]; then
      out=$(env -u POOLBENCH_MODULE_DIR LD_DEBUG=files LD_LIBRARY_PATH="$libdir" "$tmp/user-$kind" glib 2>"$tmp/ld-debug") ||
        fail "$kind: the installed program exited $? on glib: $out $(grep -v 'file=\|calling' "$tmp/ld-debug" | head -5)"
      grep -q "file=$libdir/poolbench/libpoolbench-glib.so" "$tmp/ld-debug" ||
        fail "$kind: the glib module was not loaded from $libdir/poolbench: $(grep libpoolbench-glib "$tmp/ld-debug" | head -3)"
    else
      out=$(POOLBENCH_MODULE_DIR="$libdir/poolbench" "$tmp/user-$kind" glib) ||
        fail "$kind: the installed program exited $? on glib: $out"
    fi
    [ "$out" = "ok 100" ] || fail "$kind: the installed program printed '$out' on glib, not 'ok 100'"
    echo "$kind: glib map ok through the installed module"
  fi
done

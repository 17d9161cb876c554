# Finds every external dependency through pkg-config and fails with the name of
# the Debian package to install when one is missing.  Each dependency becomes an
# imported target nas::<name>.

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
    message(FATAL_ERROR "pkg-config not found: install it with `apt-get install pkg-config`")
endif()

set(NAS_MISSING_PACKAGES "")

# nas_require(<name> <pkg-config module> <debian packages...>)
function(nas_require name module)
    pkg_check_modules(NASDEP_${name} QUIET IMPORTED_TARGET GLOBAL ${module})
    if(NASDEP_${name}_FOUND)
        add_library(nas::${name} ALIAS PkgConfig::NASDEP_${name})
        message(STATUS "nasd: found ${module} ${NASDEP_${name}_VERSION}")
    else()
        string(JOIN " " pkgs ${ARGN})
        message(SEND_ERROR "nasd: dependency '${module}' not found: install it with `apt-get install ${pkgs}`")
        set(NAS_MISSING_PACKAGES "${NAS_MISSING_PACKAGES} ${pkgs}" PARENT_SCOPE)
    endif()
endfunction()

nas_require(zmq libzmq libzmq3-dev)
nas_require(protobufc libprotobuf-c libprotobuf-c-dev)
nas_require(sqlite sqlite3 libsqlite3-dev)
nas_require(uv libuv libuv1-dev)
nas_require(openblas openblas libopenblas-dev)
nas_require(zlib zlib zlib1g-dev)
nas_require(yaml yaml-0.1 libyaml-dev)
nas_require(xxhash libxxhash libxxhash-dev)
if(NAS_BUILD_TESTS)
    nas_require(check check check)
endif()

# Optional: `nasctl serve` (the dashboard) needs libmicrohttpd.  Without it
# everything else builds and `nasctl serve` says what to install.  CI and
# deploy/lib.sh install it, so the tests of the server run there.
pkg_check_modules(NASDEP_mhd QUIET IMPORTED_TARGET GLOBAL libmicrohttpd)
if(NASDEP_mhd_FOUND)
    add_library(nas::mhd ALIAS PkgConfig::NASDEP_mhd)
    message(STATUS "nasd: found libmicrohttpd ${NASDEP_mhd_VERSION}")
else()
    message(WARNING "nasd: libmicrohttpd not found: `nasctl serve` is left out "
                    "(install it with `apt-get install libmicrohttpd-dev`)")
endif()

find_program(NAS_PROTOC_C protoc-c)
if(NOT NAS_PROTOC_C)
    message(SEND_ERROR "nasd: protoc-c not found: install it with `apt-get install protobuf-c-compiler`")
    set(NAS_MISSING_PACKAGES "${NAS_MISSING_PACKAGES} protobuf-c-compiler")
endif()

find_library(NAS_LIBM m)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)

if(NAS_MISSING_PACKAGES)
    message(FATAL_ERROR "nasd: missing dependencies. Install them with:\n  apt-get install${NAS_MISSING_PACKAGES}")
endif()

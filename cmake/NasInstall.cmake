# `cmake --install` layout and the Debian package (docs/DEPLOY.md, "Package").
#
#   bin/                       nas-master nas-worker nasctl nas-train
#   share/man/man1/            one page per binary, made from its --help by help2man
#   share/bash-completion/     one completion script, installed under each binary's name
#   share/doc/nasd/            README, LICENSE (as copyright), docs/*.md, examples/
#   lib/systemd/system/        nas-master@.service, nas-worker@.service
#
# The package's dependencies come from dpkg-shlibdeps (the shared libraries
# the binaries link), so they are the runtime libraries and nothing else.
include(GNUInstallDirs)

set(NAS_BINARIES nas-master nas-worker nasctl nas-train)
set(NAS_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where systemd units go, relative to the install prefix")

# Installed binaries carry no RPATH (Debian policy): every library they link
# is on the default search path, OpenBLAS through its alternatives link.
# The build tree's RUNPATH (pkg-config's OpenBLAS directory) is removed
# rather than rewritten: CMake's RPATH_CHANGE trips over the padded entry it
# made for that directory.
foreach(b ${NAS_BINARIES})
    install(PROGRAMS $<TARGET_FILE:${b}> DESTINATION ${CMAKE_INSTALL_BINDIR})
    install(CODE "file(RPATH_REMOVE FILE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/${b}\")")
endforeach()
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "*.svg")
install(DIRECTORY deploy/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES deploy/systemd/worker.env DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES deploy/systemd/nas-master@.service deploy/systemd/nas-worker@.service
        DESTINATION ${NAS_SYSTEMD_UNIT_DIR})
foreach(b ${NAS_BINARIES})
    install(FILES deploy/completion/nasd.bash
            DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ${b})
endforeach()

# Man pages: help2man runs each built binary's --help at build time, so the
# page cannot drift from the program.  Without help2man the pages are left
# out (said once at configure time), never made up by hand.
find_program(NAS_HELP2MAN help2man)
find_program(NAS_GZIP gzip)
if(NAS_HELP2MAN AND NAS_GZIP)
    set(nas_man_names
        "nas-master=run or resume a neural architecture search campaign"
        "nas-worker=train the architectures a nas-master hands out"
        "nasctl=look at a nasd campaign, make CurveZMQ keys"
        "nas-train=train one architecture on one data set")
    set(nas_man_pages)
    foreach(entry ${nas_man_names})
        string(REGEX REPLACE "=.*" "" b "${entry}")
        string(REGEX REPLACE "^[^=]*=" "" what "${entry}")
        set(page ${CMAKE_BINARY_DIR}/man/${b}.1.gz)
        add_custom_command(OUTPUT ${page}
            COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
            COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
                    ${NAS_HELP2MAN} --no-info --no-discard-stderr
                    --version-string=${PROJECT_VERSION} --name=${what}
                    --source=nasd --manual=nasd --output=${CMAKE_BINARY_DIR}/man/${b}.1
                    $<TARGET_FILE:${b}>
            COMMAND ${NAS_GZIP} -9nf ${CMAKE_BINARY_DIR}/man/${b}.1
            DEPENDS ${b}
            COMMENT "help2man ${b}"
            VERBATIM)
        list(APPEND nas_man_pages ${page})
    endforeach()
    add_custom_target(man ALL DEPENDS ${nas_man_pages})
    install(FILES ${nas_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
    message(STATUS "help2man or gzip not found: no man pages (apt-get install help2man)")
endif()

# The Debian package: `cpack -G DEB` in the build directory.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME nasd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "The nasd authors <nasd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "distributed neural architecture search service")
set(CPACK_PACKAGE_DESCRIPTION
    "nas-master runs a search campaign from a YAML file and hands architectures to\n\
nas-worker processes over ZeroMQ (CurveZMQ across machines); nasctl looks at it.\n\
Includes systemd units for a master per campaign and several workers per host.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# useradd (passwd) runs in postinst; everything else is found by dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "dataset-fashion-mnist")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)

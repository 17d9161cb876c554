# NasBytes.cmake - files as C byte arrays, so that a binary carries them.
#
# Included (by NasEmbed.cmake): defines nas_c_bytes(FILE VAR LEN), which sets
# VAR to FILE's bytes as C initialiser text ("0x..,0x..," 16 to a line) and
# LEN to their count.
#
# Run as a script, it writes one NUL-terminated char array (nasctl export's
# model.py):
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P NasBytes.cmake

function(nas_c_bytes file var len)
    file(READ "${file}" hex HEX)
    string(LENGTH "${hex}" n)
    math(EXPR n "${n} / 2")
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
    string(REGEX REPLACE "((0x..,){16})" "\\1\n" hex "${hex}")
    set(${var} "${hex}" PARENT_SCOPE)
    set(${len} ${n} PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE AND DEFINED IN)
    nas_c_bytes("${IN}" bytes n)
    file(WRITE "${OUT}.tmp" "/* Generated from ${IN} by cmake/NasBytes.cmake; do not edit. */\n"
         "const char ${NAME}[] = {\n${bytes}0x00};\n")
    file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
endif()

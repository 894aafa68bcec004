# Turns a file into a C array (cmake -DIN=FILE -DOUT=FILE.c -DNAME=symbol -P embed.cmake): the
# recovery environment's /init ships inside asrimg, so it always matches the asrimg that made it.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUT}.tmp" "/* Generated from ${IN} by cli/embed.cmake: edit that file. */\n"
  "extern const unsigned char ${NAME}[];\nextern const unsigned long ${NAME}_len;\n"
  "const unsigned char ${NAME}[] = {\n    ${bytes}\n};\n"
  "const unsigned long ${NAME}_len = sizeof ${NAME};\n")
file(RENAME "${OUT}.tmp" "${OUT}")

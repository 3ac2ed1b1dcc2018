/* neardup — functions banned from the code base (git's banned.h), because
 * they are too easy to misuse: they write without knowing the buffer's
 * size. Use snprintf (or memcpy with a checked length) instead.
 *
 * The Makefile force-includes this file into every C file it compiles
 * (-include src/banned.h: library, CLI, tests, benchmarks, fuzz targets),
 * so a use anywhere is a compile error, whatever the file includes.
 * Unlike git's macros, these are declarations with the "unavailable"
 * attribute (GCC 12, clang): they need no system header before them, so
 * they come first and leave each file's feature macros (_GNU_SOURCE) alone. */
#ifndef NEARDUP_BANNED_H
#define NEARDUP_BANNED_H

#define ND_BANNED(why) __attribute__((unavailable(why)))

char *strcpy(char *, const char *) ND_BANNED("banned (src/banned.h): use snprintf or memcpy with a length");
char *strcat(char *, const char *) ND_BANNED("banned (src/banned.h): use snprintf with an offset");
int sprintf(char *, const char *, ...) ND_BANNED("banned (src/banned.h): use snprintf");
int vsprintf(char *, const char *, __builtin_va_list) ND_BANNED("banned (src/banned.h): use vsnprintf");

#endif

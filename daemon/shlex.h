/*
 * shlex.h - split a command line into arguments the way Patroni does for its
 * callbacks, pre_promote and before_stop (Python's shlex.split, POSIX mode): words
 * separated by blanks; '...' keeps everything literally; "..." keeps everything but
 * \" and \\, which lose their backslash; outside quotes a backslash keeps the next
 * character literally; adjacent pieces join into one word ('' is an empty word);
 * '#' is an ordinary character.  No shell runs: no variables, globs, pipes or ';'.
 */
#ifndef PGW_SHLEX_H
#define PGW_SHLEX_H

#include <stddef.h>

/*
 * Split s (len bytes, may contain no NUL) into a NULL-terminated array of words,
 * *argc of them, each malloc'ed (pgw_shlex_free frees all).  NULL with *err set to a
 * static message on an unclosed quote, a trailing backslash or no memory; an empty
 * or blank s gives an array of 0 words.
 */
char **pgw_shlex_split(const char *s, size_t len, size_t *argc, const char **err);
void pgw_shlex_free(char **argv);

#endif

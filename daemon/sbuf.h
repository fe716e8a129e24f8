/*
 * sbuf.h - the growable string of pgwarden (pgwardenctl's texts, PostgreSQL's
 * configuration files and connection strings in pg.c, the fencing audit log's
 * records): appends that never fail loudly, a NUL after the text at all times,
 * and one out-of-memory flag that, once set, stays set until pgw_sb_take.
 *
 * A struct pgw_sb starts zeroed ({0}); buf is NULL until the first append.
 */
#ifndef PGW_SBUF_H
#define PGW_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct pgw_sb {
	char *buf;       /* the text, NUL-terminated after len (once allocated) */
	size_t len, cap; /* bytes used (without the NUL), bytes allocated */
	bool oom;        /* an allocation failed: every later call does nothing */
};

/* Room for extra more bytes and a NUL after len; false (oom set) when out of memory. */
bool pgw_sb_reserve(struct pgw_sb *sb, size_t extra);
/* Append n bytes of p (which may hold NULs). */
void pgw_sb_addn(struct pgw_sb *sb, const char *p, size_t n);
void pgw_sb_add(struct pgw_sb *sb, const char *s);
/* Append a printf-formatted text of any length. */
void pgw_sb_addf(struct pgw_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append n times c. */
void pgw_sb_pad(struct pgw_sb *sb, char c, size_t n);
/* The text (caller frees; "" when nothing was added), or NULL when something ran out of
 * memory.  sb is reset to empty. */
char *pgw_sb_take(struct pgw_sb *sb);
/* Drop the text; sb is reset to empty. */
void pgw_sb_free(struct pgw_sb *sb);

#endif

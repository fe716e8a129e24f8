/*
 * sbuf.c - the growable string; see sbuf.h.
 */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pgw_sb_reserve(struct pgw_sb *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;
	char *p;

	if (sb->oom)
		return false;
	if (need <= sb->cap)
		return true;
	if (need < 2 * sb->cap)
		need = 2 * sb->cap;
	if (need < 256)
		need = 256;
	p = realloc(sb->buf, need);
	if (!p) {
		sb->oom = true;
		return false;
	}
	sb->buf = p;
	sb->cap = need;
	return true;
}

void pgw_sb_addn(struct pgw_sb *sb, const char *p, size_t n)
{
	if (!pgw_sb_reserve(sb, n))
		return;
	memcpy(sb->buf + sb->len, p, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void pgw_sb_add(struct pgw_sb *sb, const char *s)
{
	pgw_sb_addn(sb, s, strlen(s));
}

void pgw_sb_addf(struct pgw_sb *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !pgw_sb_reserve(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void pgw_sb_pad(struct pgw_sb *sb, char c, size_t n)
{
	if (!pgw_sb_reserve(sb, n))
		return;
	memset(sb->buf + sb->len, c, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

char *pgw_sb_take(struct pgw_sb *sb)
{
	char *out;

	if (!sb->oom && !sb->buf)
		pgw_sb_reserve(sb, 0);
	if (sb->oom) {
		free(sb->buf);
		out = NULL;
	} else {
		out = sb->buf;
		out[sb->len] = '\0';
	}
	memset(sb, 0, sizeof(*sb));
	return out;
}

void pgw_sb_free(struct pgw_sb *sb)
{
	free(sb->buf);
	memset(sb, 0, sizeof(*sb));
}

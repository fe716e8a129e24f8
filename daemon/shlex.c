/*
 * shlex.c - Patroni's command splitting (Python shlex.split, POSIX mode); see shlex.h.
 */
#include "shlex.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct words {
	char **v;
	size_t n;
	char *cur; /* the word being built (len bytes), NULL between words */
	size_t len;
};

static bool put_char(struct words *w, char ch)
{
	char *p = realloc(w->cur, w->len + 2);

	if (!p)
		return false;
	p[w->len++] = ch;
	p[w->len] = '\0';
	w->cur = p;
	return true;
}

/* Start a word if none is under way ('' alone is a word). */
static bool begin_word(struct words *w)
{
	if (w->cur)
		return true;
	w->cur = calloc(1, 1);
	w->len = 0;
	return w->cur != NULL;
}

static bool end_word(struct words *w)
{
	char **v;

	if (!w->cur)
		return true;
	v = realloc(w->v, (w->n + 2) * sizeof(*v));
	if (!v)
		return false;
	v[w->n++] = w->cur;
	v[w->n] = NULL;
	w->v = v;
	w->cur = NULL;
	return true;
}

static char **fail(struct words *w, const char **err, const char *msg)
{
	free(w->cur);
	w->cur = NULL;
	pgw_shlex_free(w->v);
	*err = msg;
	return NULL;
}

void pgw_shlex_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

char **pgw_shlex_split(const char *s, size_t len, size_t *argc, const char **err)
{
	struct words w = {0};
	static const char *const oom = "out of memory";
	size_t i = 0;

	*argc = 0;
	*err = NULL;
	if (memchr(s, '\0', len))
		return fail(&w, err, "a NUL byte in the command");
	while (i < len) {
		char ch = s[i++];

		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
			if (!end_word(&w))
				return fail(&w, err, oom);
		} else if (ch == '\'') {
			const char *close = memchr(s + i, '\'', len - i);

			if (!close)
				return fail(&w, err, "no closing quotation");
			if (!begin_word(&w))
				return fail(&w, err, oom);
			for (; s + i < close; i++)
				if (!put_char(&w, s[i]))
					return fail(&w, err, oom);
			i++;
		} else if (ch == '"') {
			if (!begin_word(&w))
				return fail(&w, err, oom);
			for (;;) {
				if (i >= len)
					return fail(&w, err, "no closing quotation");
				ch = s[i++];
				if (ch == '"')
					break;
				if (ch == '\\' && i < len && (s[i] == '"' || s[i] == '\\'))
					ch = s[i++];
				if (!put_char(&w, ch))
					return fail(&w, err, oom);
			}
		} else if (ch == '\\') {
			if (i >= len)
				return fail(&w, err, "no escaped character after a backslash");
			if (!begin_word(&w) || !put_char(&w, s[i++]))
				return fail(&w, err, oom);
		} else if (!begin_word(&w) || !put_char(&w, ch)) {
			return fail(&w, err, oom);
		}
	}
	if (!end_word(&w))
		return fail(&w, err, oom);
	if (!w.v && !(w.v = calloc(1, sizeof(*w.v))))
		return fail(&w, err, oom);
	*argc = w.n;
	return w.v;
}

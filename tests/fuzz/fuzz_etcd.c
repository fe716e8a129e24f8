/*
 * fuzz_etcd.c - fuzz target for the etcd client's answer parsers (daemon/etcd.c):
 * a whole answer (parse_answer, then parse_range on it), and the watch stream
 * (watch_consume) fed in chunks whose sizes come from the input.  etcd.c is included
 * so that its static parsers are reachable; nothing is sent anywhere.
 *
 * Input: byte 0 selects answer (even) or stream (odd); byte 1 is the chunk size of the
 * stream; the rest is the bytes etcd would have sent.  Checked: no crash, no leak, no
 * UB (ASan/UBSan), every range key free of NUL bytes, a failed parse leaves a message.
 */
#include "../../daemon/etcd.c"

static bool on_event(void *arg, const struct pgw_etcd_event *ev)
{
	size_t *n = arg;

	if (!ev->key)
		abort(); /* the parser hands out only keys it decoded */
	(*n)++;
	return *n > 8; /* stop after a few, as a caller does */
}

static void fuzz_answer(struct pgw_etcd *c, const uint8_t *data, size_t size)
{
	/* as buf_consume leaves it: the bytes, then a NUL */
	struct buf b = {.data = malloc(size + 1), .len = size, .cap = size + 1};
	struct req r = {.what = "range", .path = "/v3/kv/range"};
	struct pgw_etcd_range out = {0};
	json_object *ans = NULL;

	if (!b.data)
		return;
	memcpy(b.data, data, size);
	b.data[size] = '\0';
	if (parse_answer(c, 0, &r, &b, 200, &ans) != 0) {
		if (!pgw_etcd_errmsg(c)[0])
			abort();
		free(b.data);
		return;
	}
	free(b.data);
	if (parse_range(c, ans, &out) == 0)
		for (size_t i = 0; i < out.n; i++)
			if (!out.kvs[i].key || !out.kvs[i].value)
				abort();
	pgw_etcd_range_free(&out);
	json_object_put(ans);
}

static void fuzz_stream(struct pgw_etcd *c, const uint8_t *data, size_t size, size_t chunk)
{
	size_t events = 0, off = 0;
	struct watch w = {.c = c, .tok = json_tokener_new(), .fn = on_event, .arg = &events};
	struct req r = {.what = "watch", .path = "/v3/watch", .ud = &w};

	if (!w.tok)
		return;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (watch_consume(&r, (const char *)data + off, n) != n)
			break;
		off += n;
	}
	json_tokener_free(w.tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const eps[] = {"127.0.0.1:1"};
	struct pgw_etcd *c;

	if (size < 2)
		return 0;
	c = pgw_etcd_new(eps, 1, "http", NULL, NULL, NULL);
	if (!c)
		return 0;
	c->at = 0;
	if (data[0] % 2 == 0)
		fuzz_answer(c, data + 2, size - 2);
	else
		fuzz_stream(c, data + 2, size - 2, 1 + data[1]);
	pgw_etcd_free(c);
	return 0;
}

/*
 * fence.c - chassis power off/on/status through a BMC with one bound per fence: native
 * IPMI (libfreeipmi), ipmitool, or a fence-agents style external agent; the peers'
 * credentials file; BMC addresses.  See fence.h.
 *
 * Facts this code relies on (measured against OpenIPMI's ipmi_sim, tests/ipmi/):
 * libfreeipmi's session_timeout bounds each call (the open, and each command from its
 * start), so a session is reused only while a command started in it still ends by the
 * deadline; ipmi_sim needs the "open session privilege" workaround (without it the open
 * fails with IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED), so the open is retried with it
 * only then; ipmitool's default cipher suite (17) makes such BMCs wait 10 s, so suite 3
 * is always named; a wrong password fails in milliseconds over RMCP+ but only by timeout
 * over IPMI 1.5; an unreachable BMC is only ever a timeout (ICMP is ignored).
 */
#include "fence.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef PGW_HAVE_FREEIPMI
#include <freeipmi/freeipmi.h>
#endif

#include "spawn.h"

extern char **environ;

#define DEFAULT_TIMEOUT_MS 10000
#define OUT_MAX            4096 /* bytes of a child's output kept for the detail */
#define ERR_MAX            256
#define REUSE_MAX_MS       1000 /* a native session is used for new commands this long */
#define RETRANSMIT_MS      500  /* first IPMI retransmission (libfreeipmi's default: 1000) */

enum backend { BE_NATIVE, BE_IPMITOOL, BE_AGENT };

/* One fence operation in progress. */
struct fx {
	const struct pgw_fence_opts *o;
	const struct pgw_fence_bmc *b;
	const struct pgw_fence_cred *c;
	enum backend be;
	char tool[PATH_MAX];        /* ipmitool or the agent, resolved */
	char addr[300];             /* host:port, for messages */
	char method[PATH_MAX + 32]; /* "native IPMI 2.0, cipher 3", for messages */
	int cipher;                 /* effective suite for native and ipmitool */
	int timeout_ms;
	int64_t deadline; /* CLOCK_MONOTONIC ms */
	bool permanent;   /* the last error cannot go away by retrying */
	bool timed_out;   /* the last error was the bound */
	char err[ERR_MAX];
	int status_reads;
#ifdef PGW_HAVE_FREEIPMI
	ipmi_ctx_t ctx;
	int64_t reuse_until;
	bool workaround; /* ipmi_sim: open with the open-session-privilege workaround */
#endif
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void fx_error(struct fx *f, bool permanent, bool timed_out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fx_error(struct fx *f, bool permanent, bool timed_out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->err, sizeof(f->err), fmt, ap);
	va_end(ap);
	f->permanent = permanent;
	f->timed_out = timed_out;
}

/* Replace every occurrence of the password in s (a child's output) by "***". */
static void redact(char *s, const char *secret)
{
	size_t n = strlen(secret);
	char *p;

	if (n == 0)
		return;
	while ((p = strstr(s, secret)) != NULL) {
		size_t rest = strlen(p + n);

		if (n >= 3) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + n, rest + 1);
		} else {
			memset(p, '*', n);
		}
	}
}

static const char *priv_name(const struct pgw_fence_bmc *b)
{
	if (!b->privilege[0] || !strcasecmp(b->privilege, "ADMINISTRATOR") ||
	    !strcasecmp(b->privilege, "ADMIN"))
		return "ADMINISTRATOR";
	if (!strcasecmp(b->privilege, "OPERATOR"))
		return "OPERATOR";
	if (!strcasecmp(b->privilege, "USER"))
		return "USER";
	return NULL;
}

/* --- child processes (ipmitool, agents) --- */

struct child {
	char *const *argv;
	const char *stdin_data; /* NULL: /dev/null */
	const char *fd3_data;   /* NULL: nothing on fd 3 */
	int64_t deadline;
	char out[OUT_MAX]; /* stdout + stderr, the last OUT_MAX - 1 bytes */
	size_t outlen;
	int status; /* waitpid status when exited */
	bool exited, timed_out;
};

/* environ without LC_ALL, PYTHONWARNINGS and IPMI_PASSWORD, plus LC_ALL=C and
 * PYTHONWARNINGS=ignore.  The strings are environ's or static; free the array only. */
static char **child_env(void)
{
	static char lc[] = "LC_ALL=C", pyw[] = "PYTHONWARNINGS=ignore";
	size_t n = 0, k = 0;
	char **env;

	while (environ && environ[n])
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LC_ALL=", 7) &&
		    strncmp(environ[i], "PYTHONWARNINGS=", 15) &&
		    strncmp(environ[i], "IPMI_PASSWORD=", 14))
			env[k++] = environ[i];
	env[k++] = lc;
	env[k++] = pyw;
	return env;
}

/* Write all of data to a pipe without dying of SIGPIPE when the reader is gone. */
static void write_pipe(int fd, const char *data)
{
	size_t n = strlen(data);
	sigset_t pipe_set, old;
	struct timespec zero = {0, 0};
	bool epipe = false;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	while (n > 0) {
		ssize_t w = write(fd, data, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			epipe = errno == EPIPE;
			break;
		}
		data += w;
		n -= (size_t)w;
	}
	if (epipe && !sigismember(&old, SIGPIPE))
		sigtimedwait(&pipe_set, NULL, &zero); /* consume our SIGPIPE */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/*
 * Run argv[0] in its own process group, stdin and fd 3 fed from memory, stdout and stderr
 * collected, until it exits or the deadline passes (then the group is SIGKILLed).
 * 0 when it ran (see exited/timed_out/status), -1 when it could not be started (err).
 */
static int run_child(struct child *ch, char *err, size_t errlen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, p3[2] = {-1, -1};
	char **env = child_env();
	struct pgw_child_wait w = {
	    .deadline = ch->deadline, .out = ch->out, .out_size = sizeof(ch->out)};
	pid_t pid;
	int rc = -1;

	ch->outlen = 0;
	ch->out[0] = '\0';
	ch->exited = ch->timed_out = false;
	if (!env) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || (ch->fd3_data && pipe2(p3, O_CLOEXEC) < 0)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	if (ch->stdin_data ? pipe2(in, O_CLOEXEC) < 0
	                   : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "stdin for the child: %s", strerror(errno));
		goto out;
	}
	pid = pgw_spawn(ch->argv, env, in[0], out[1], p3[0]);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto out;
	}
	close(out[1]);
	out[1] = -1;
	close(in[0]);
	in[0] = -1;
	if (p3[0] >= 0) {
		close(p3[0]);
		p3[0] = -1;
	}
	/* small (< 1 KiB): fits the pipe buffer, so this never waits for the reader */
	if (in[1] >= 0) {
		write_pipe(in[1], ch->stdin_data);
		close(in[1]);
		in[1] = -1;
	}
	if (p3[1] >= 0) {
		write_pipe(p3[1], ch->fd3_data);
		close(p3[1]);
		p3[1] = -1;
	}
	pgw_child_wait(pid, out[0], &w);
	out[0] = -1; /* closed by pgw_child_wait */
	ch->outlen = w.out_len;
	ch->status = w.status;
	ch->exited = w.exited;
	ch->timed_out = w.timed_out;
	kill(-pid, SIGKILL); /* anything it left behind in its group */
	rc = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (p3[i] >= 0)
			close(p3[i]);
	}
	free(env);
	return rc;
}

/* The last non-empty line of a child's output, password redacted, into buf. */
static const char *last_line(struct child *ch, const char *secret, char *buf, size_t len)
{
	char *end = ch->out + ch->outlen, *start;

	while (end > ch->out && isspace((unsigned char)end[-1]))
		end--;
	start = end;
	while (start > ch->out && start[-1] != '\n')
		start--;
	snprintf(buf, len, "%.*s", (int)(end - start), start);
	redact(buf, secret);
	return buf[0] ? buf : "no output";
}

/* The exit of a child as text: "exit 1", "killed by signal 9". */
static void describe_exit(const struct child *ch, char *buf, size_t len)
{
	if (!ch->exited)
		snprintf(buf, len, "exit status unknown");
	else if (WIFEXITED(ch->status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(ch->status));
	else if (WIFSIGNALED(ch->status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(ch->status));
	else
		snprintf(buf, len, "status 0x%x", ch->status);
}

/* Find prog (absolute, relative with '/', or in PATH) and check it is executable. */
static int resolve_exe(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	const char *p;

	if (strchr(prog, '/')) {
		snprintf(out, len, "%s", prog);
		return access(out, X_OK);
	}
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = path; *p;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);

		snprintf(out, len, "%.*s/%s", (int)n, n ? p : ".", prog);
		if (access(out, X_OK) == 0)
			return 0;
		p += n + (colon ? 1 : 0);
	}
	/* not in PATH: the sbin directories are often missing from a daemon's PATH */
	snprintf(out, len, "/usr/sbin/%s", prog);
	if (access(out, X_OK) == 0)
		return 0;
	errno = ENOENT;
	return -1;
}

/* --- ipmitool --- */

static int ipmitool_run(struct fx *f, const char *what, struct child *ch)
{
	char port[16], cipher[16], err[ERR_MAX], pw[sizeof(f->c->password) + 2];
	const char *argv[32];
	int n = 0, rc;

	snprintf(port, sizeof(port), "%d", f->b->port);
	snprintf(cipher, sizeof(cipher), "%d", f->cipher);
	argv[n++] = f->tool;
	argv[n++] = "-I";
	argv[n++] = f->b->lanplus ? "lanplus" : "lan";
	argv[n++] = "-H";
	argv[n++] = f->b->host;
	argv[n++] = "-p";
	argv[n++] = port;
	argv[n++] = "-U";
	argv[n++] = f->c->username;
	argv[n++] = "-f"; /* the password comes through a pipe on fd 3 */
	argv[n++] = "/dev/fd/3";
	argv[n++] = "-L";
	argv[n++] = priv_name(f->b);
	if (f->b->lanplus) {
		argv[n++] = "-C";
		argv[n++] = cipher;
	}
	argv[n++] = "-N"; /* seconds per try; the deadline kills it anyway */
	argv[n++] = "1";
	argv[n++] = "-R";
	argv[n++] = "2";
	argv[n++] = "chassis";
	argv[n++] = "power";
	argv[n++] = what;
	argv[n] = NULL;
	snprintf(pw, sizeof(pw), "%s\n", f->c->password);
	memset(ch, 0, sizeof(*ch));
	ch->argv = (char *const *)argv;
	ch->fd3_data = pw;
	ch->deadline = f->deadline;
	rc = run_child(ch, err, sizeof(err));
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0) {
		fx_error(f, false, false, "cannot run %s: %s", f->tool, err);
		return -1;
	}
	if (ch->timed_out) {
		fx_error(f, false, true, "no answer within %d ms (ipmitool killed)", f->timeout_ms);
		return -1;
	}
	return 0;
}

static int ipmitool_control(struct fx *f, bool off)
{
	struct child ch;
	char line[200], how[48];

	if (ipmitool_run(f, off ? "off" : "on", &ch) < 0)
		return -1;
	if (ch.exited && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0)
		return 0;
	last_line(&ch, f->c->password, line, sizeof(line));
	describe_exit(&ch, how, sizeof(how));
	fx_error(f, strstr(line, "Insufficient privilege") != NULL, false, "ipmitool %s: %s", how,
	         line);
	return -1;
}

static enum pgw_power ipmitool_status(struct fx *f)
{
	struct child ch;
	char line[200], how[48];

	if (ipmitool_run(f, "status", &ch) < 0)
		return PGW_POWER_UNKNOWN;
	last_line(&ch, f->c->password, line, sizeof(line));
	if (ch.exited && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0) {
		if (strstr(line, "Power is off"))
			return PGW_POWER_OFF;
		if (strstr(line, "Power is on"))
			return PGW_POWER_ON;
		fx_error(f, false, false, "ipmitool: unexpected status answer \"%s\"", line);
		return PGW_POWER_UNKNOWN;
	}
	describe_exit(&ch, how, sizeof(how));
	fx_error(f, false, false, "ipmitool %s: %s", how, line);
	return PGW_POWER_UNKNOWN;
}

/* --- external agents (fence-agents stdin protocol) --- */

static int agent_run(struct fx *f, const char *action, struct child *ch)
{
	char in[1024], err[ERR_MAX], cipher[32] = "", privlc[16], *argv[2] = {f->tool, NULL};
	const char *priv = priv_name(f->b);
	size_t i;
	int rc;

	for (i = 0; i < sizeof(privlc) - 1 && priv[i]; i++)
		privlc[i] = (char)tolower((unsigned char)priv[i]);
	privlc[i] = '\0';
	if (f->b->cipher_suite >= 0)
		snprintf(cipher, sizeof(cipher), "cipher=%d\n", f->b->cipher_suite);
	snprintf(in, sizeof(in),
	         "action=%s\nip=%s\nipport=%d\nusername=%s\npassword=%s\n%s%sprivlvl=%s\n"
	         "power_wait=0\n",
	         action, f->b->host, f->b->port, f->c->username, f->c->password,
	         f->b->lanplus ? "lanplus=1\n" : "", cipher, privlc);
	memset(ch, 0, sizeof(*ch));
	ch->argv = argv;
	ch->stdin_data = in;
	ch->deadline = f->deadline;
	rc = run_child(ch, err, sizeof(err));
	explicit_bzero(in, sizeof(in));
	if (rc < 0) {
		fx_error(f, false, false, "cannot run agent %s: %s", f->tool, err);
		return -1;
	}
	if (ch->timed_out) {
		fx_error(f, false, true, "agent %s action=%s: no result within %d ms (killed)",
		         f->tool, action, f->timeout_ms);
		return -1;
	}
	return 0;
}

static int agent_control(struct fx *f, bool off)
{
	struct child ch;
	char line[200], how[48];

	if (agent_run(f, off ? "off" : "on", &ch) < 0)
		return -1;
	if (ch.exited && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0)
		return 0;
	describe_exit(&ch, how, sizeof(how));
	fx_error(f, false, false, "agent %s action=%s: %s: %s", f->tool, off ? "off" : "on", how,
	         last_line(&ch, f->c->password, line, sizeof(line)));
	return -1;
}

static enum pgw_power agent_status(struct fx *f)
{
	struct child ch;
	char line[200], how[48];

	if (agent_run(f, "status", &ch) < 0)
		return PGW_POWER_UNKNOWN;
	if (ch.exited && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0)
		return PGW_POWER_ON;
	if (ch.exited && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 2)
		return PGW_POWER_OFF;
	describe_exit(&ch, how, sizeof(how));
	fx_error(f, false, false, "agent %s action=status: %s: %s", f->tool, how,
	         last_line(&ch, f->c->password, line, sizeof(line)));
	return PGW_POWER_UNKNOWN;
}

/* --- native IPMI (libfreeipmi) --- */

#ifdef PGW_HAVE_FREEIPMI

static void native_close(struct fx *f)
{
	if (!f->ctx)
		return;
	ipmi_ctx_close(f->ctx);
	ipmi_ctx_destroy(f->ctx);
	f->ctx = NULL;
}

/* Record the context's error; close the session when it is no longer usable. */
static void native_error(struct fx *f, const char *during)
{
	int e = ipmi_ctx_errnum(f->ctx);
	bool permanent = false, timed_out = false;

	switch (e) {
	case IPMI_ERR_USERNAME_INVALID:
	case IPMI_ERR_PASSWORD_INVALID:
	case IPMI_ERR_K_G_INVALID:
	case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
	case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
	case IPMI_ERR_AUTHENTICATION_TYPE_UNAVAILABLE:
	case IPMI_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
	case IPMI_ERR_IPMI_2_0_UNAVAILABLE:
	case IPMI_ERR_HOSTNAME_INVALID:
	case IPMI_ERR_PARAMETERS:
		permanent = true;
		break;
	case IPMI_ERR_CONNECTION_TIMEOUT:
	case IPMI_ERR_SESSION_TIMEOUT:
	case IPMI_ERR_MESSAGE_TIMEOUT:
		timed_out = true;
		break;
	default:
		break;
	}
	if (timed_out)
		fx_error(f, false, true, "%s: no answer from the BMC (timeout)", during);
	else
		fx_error(f, permanent, false, "%s: %s", during, ipmi_ctx_errormsg(f->ctx));
	if (e != IPMI_ERR_BAD_COMPLETION_CODE && e != IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED)
		native_close(f);
}

/*
 * Session and retransmission timeouts whose real end stays within budget_ms: libfreeipmi
 * waits rt, rt, 2rt, 2rt, 3rt, ... for an answer and gives up at the first of these sums
 * that reaches the session timeout (measured: 1000/200 -> 1.2 s, 2000/250 -> 2.25 s), so
 * the session timeout is (a little below) the largest such sum within the budget.  0, or
 * -1 when the budget is too small for one retransmission.
 */
static int session_times(int64_t budget_ms, unsigned *st, unsigned *rt)
{
	int64_t r = RETRANSMIT_MS, sum = 0, best = 0;

	if (budget_ms < 2 * r)
		r = budget_ms / 2;
	if (r < 1)
		return -1;
	for (int k = 0;; k++) {
		int64_t step = r * (1 + k / 2);

		if (sum + step > budget_ms)
			break;
		sum += step;
		if (k >= 1)
			best = sum; /* the session timeout must exceed the retransmission timeout */
	}
	/* the check runs when a wait ends, which can be a moment before the exact sum */
	best -= r / 4 < 20 ? r / 4 : 20;
	if (best <= r)
		return -1;
	*st = (unsigned)best;
	*rt = (unsigned)r;
	return 0;
}

/*
 * A session in which a command started now ends by the deadline: libfreeipmi bounds each
 * call by the session timeout, so a session opened at t with a session timeout that ends
 * by (deadline - reuse) is used for new commands until t + reuse only.
 */
static int native_session(struct fx *f)
{
	int64_t t = now_ms(), rem = f->deadline - t, reuse;
	unsigned st, rt;
	uint8_t priv;
	char host[300];
	const char *p = priv_name(f->b);
	int r;

	if (f->ctx && t <= f->reuse_until)
		return 0;
	native_close(f);
	if (rem < 10) {
		fx_error(f, false, true, "no time left for an IPMI session (%d ms bound)",
		         f->timeout_ms);
		return -1;
	}
	reuse = rem / 4 < REUSE_MAX_MS ? rem / 4 : REUSE_MAX_MS;
	if (session_times(rem - reuse, &st, &rt) < 0) {
		fx_error(f, false, true, "no time left for an IPMI session (%d ms bound)",
		         f->timeout_ms);
		return -1;
	}
	priv = !strcmp(p, "OPERATOR") ? IPMI_PRIVILEGE_LEVEL_OPERATOR
	       : !strcmp(p, "USER")   ? IPMI_PRIVILEGE_LEVEL_USER
	                              : IPMI_PRIVILEGE_LEVEL_ADMIN;
	if (f->b->port == 623)
		snprintf(host, sizeof(host), "%s", f->b->host);
	else if (strchr(f->b->host, ':'))
		snprintf(host, sizeof(host), "[%s]:%d", f->b->host, f->b->port);
	else
		snprintf(host, sizeof(host), "%s:%d", f->b->host, f->b->port);
	for (;;) {
		f->ctx = ipmi_ctx_create();
		if (!f->ctx) {
			fx_error(f, false, false, "ipmi_ctx_create: %s", strerror(errno));
			return -1;
		}
		if (f->b->lanplus)
			r = ipmi_ctx_open_outofband_2_0(
			    f->ctx, host, f->c->username, f->c->password, NULL, 0, priv,
			    (uint8_t)f->cipher, st, rt,
			    f->workaround
			        ? IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE
			        : 0,
			    IPMI_FLAGS_DEFAULT);
		else
			r = ipmi_ctx_open_outofband(f->ctx, host, f->c->username, f->c->password,
			                            IPMI_AUTHENTICATION_TYPE_MD5, priv, st, rt, 0,
			                            IPMI_FLAGS_DEFAULT);
		if (r == 0)
			break;
		/* BMCs that echo the requested privilege in Open Session (ipmi_sim, some Intel
		 * and Supermicro boards) need the workaround; compliant ones must not get it */
		if (f->b->lanplus && !f->workaround &&
		    ipmi_ctx_errnum(f->ctx) == IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED &&
		    now_ms() < f->deadline - 10) {
			ipmi_ctx_destroy(f->ctx);
			f->ctx = NULL;
			f->workaround = true;
			continue;
		}
		native_error(f, "IPMI session");
		native_close(f);
		return -1;
	}
	f->reuse_until = t + reuse;
	return 0;
}

static int native_control(struct fx *f, bool off)
{
	fiid_obj_t rs;
	uint64_t cc = 0;
	int r;

	if (native_session(f) < 0)
		return -1;
	rs = fiid_obj_create(tmpl_cmd_chassis_control_rs);
	if (!rs) {
		fx_error(f, false, false, "fiid_obj_create: out of memory");
		return -1;
	}
	r = ipmi_cmd_chassis_control(
	    f->ctx, off ? IPMI_CHASSIS_CONTROL_POWER_DOWN : IPMI_CHASSIS_CONTROL_POWER_UP, rs);
	if (r < 0) {
		if (ipmi_ctx_errnum(f->ctx) == IPMI_ERR_BAD_COMPLETION_CODE &&
		    fiid_obj_get(rs, "comp_code", &cc) > 0)
			fx_error(f, false, false, "Chassis Control: completion code 0x%02x",
			         (unsigned)cc);
		else
			native_error(f, "Chassis Control");
	}
	fiid_obj_destroy(rs);
	return r < 0 ? -1 : 0;
}

static enum pgw_power native_status(struct fx *f)
{
	enum pgw_power p = PGW_POWER_UNKNOWN;
	fiid_obj_t rs;
	uint64_t on = 0;

	if (native_session(f) < 0)
		return PGW_POWER_UNKNOWN;
	rs = fiid_obj_create(tmpl_cmd_get_chassis_status_rs);
	if (!rs) {
		fx_error(f, false, false, "fiid_obj_create: out of memory");
		return PGW_POWER_UNKNOWN;
	}
	if (ipmi_cmd_get_chassis_status(f->ctx, rs) < 0)
		native_error(f, "Get Chassis Status");
	else if (fiid_obj_get(rs, "current_power_state.power_is_on", &on) <= 0)
		fx_error(f, false, false, "Get Chassis Status: no power state in the answer");
	else
		p = on ? PGW_POWER_ON : PGW_POWER_OFF;
	fiid_obj_destroy(rs);
	return p;
}

#endif /* PGW_HAVE_FREEIPMI */

/* --- one interface over the three --- */

static int be_control(struct fx *f, bool off)
{
	switch (f->be) {
#ifdef PGW_HAVE_FREEIPMI
	case BE_NATIVE:
		return native_control(f, off);
#endif
	case BE_IPMITOOL:
		return ipmitool_control(f, off);
	case BE_AGENT:
		return agent_control(f, off);
	default:
		fx_error(f, true, false, "no IPMI backend");
		return -1;
	}
}

static enum pgw_power be_status(struct fx *f)
{
	enum pgw_power p;

	f->status_reads++;
	switch (f->be) {
#ifdef PGW_HAVE_FREEIPMI
	case BE_NATIVE:
		p = native_status(f);
		break;
#endif
	case BE_IPMITOOL:
		p = ipmitool_status(f);
		break;
	case BE_AGENT:
		p = agent_status(f);
		break;
	default:
		fx_error(f, true, false, "no IPMI backend");
		p = PGW_POWER_UNKNOWN;
		break;
	}
	return p;
}

static void be_end(struct fx *f)
{
#ifdef PGW_HAVE_FREEIPMI
	native_close(f);
#else
	(void)f;
#endif
}

/* Check the arguments and pick the backend.  -1 with detail on a usage error. */
static int fx_init(struct fx *f, const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                   const struct pgw_fence_cred *c, char *detail, size_t len)
{
	memset(f, 0, sizeof(*f));
	f->o = o;
	f->b = b;
	f->c = c;
	f->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	f->cipher = b->cipher_suite >= 0 ? b->cipher_suite : PGW_FENCE_DEFAULT_CIPHER;
	if (strchr(b->host, ':'))
		snprintf(f->addr, sizeof(f->addr), "[%s]:%d", b->host, b->port);
	else
		snprintf(f->addr, sizeof(f->addr), "%s:%d", b->host, b->port);
	if (!b->host[0] || b->port <= 0 || b->port > 65535) {
		snprintf(detail, len, "%s: no usable BMC address", f->addr);
		return -1;
	}
	if (!priv_name(b)) {
		snprintf(detail, len,
		         "%s: unknown privilege level \"%s\" (ADMINISTRATOR, OPERATOR or USER)",
		         f->addr, b->privilege);
		return -1;
	}
	if (!c->username[0]) {
		snprintf(detail, len, "%s: no BMC user name", f->addr);
		return -1;
	}
	if (o->agent == PGW_FENCE_EXTERNAL) {
		if (!o->agent_path || !*o->agent_path ||
		    resolve_exe(o->agent_path, f->tool, sizeof(f->tool)) < 0) {
			snprintf(detail, len, "%s: fence agent %s: %s", f->addr,
			         o->agent_path && *o->agent_path ? o->agent_path : "(none)",
			         o->agent_path && *o->agent_path ? strerror(errno)
			                                         : "no agent path");
			return -1;
		}
		f->be = BE_AGENT;
		snprintf(f->method, sizeof(f->method), "agent %s", f->tool);
		return 0;
	}
#ifdef PGW_HAVE_FREEIPMI
	if (!o->agent_path || !*o->agent_path) {
		f->be = BE_NATIVE;
		if (b->lanplus)
			snprintf(f->method, sizeof(f->method), "native IPMI 2.0, cipher %d",
			         f->cipher);
		else
			snprintf(f->method, sizeof(f->method), "native IPMI 1.5");
		return 0;
	}
#endif
	if (resolve_exe(o->agent_path && *o->agent_path ? o->agent_path : "ipmitool", f->tool,
	                sizeof(f->tool)) < 0) {
		snprintf(detail, len, "%s: %s: %s", f->addr,
		         o->agent_path && *o->agent_path ? o->agent_path : "ipmitool",
		         strerror(errno));
		return -1;
	}
	f->be = BE_IPMITOOL;
	if (b->lanplus)
		snprintf(f->method, sizeof(f->method), "ipmitool lanplus, cipher %d", f->cipher);
	else
		snprintf(f->method, sizeof(f->method), "ipmitool lan");
	return 0;
}

/* Power off (or on) and poll until the BMC reports it, attempt by attempt. */
static int power_change(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                        const struct pgw_fence_cred *c, bool off, char *detail, size_t len)
{
	const char *what = off ? "power off" : "power on";
	const enum pgw_power want = off ? PGW_POWER_OFF : PGW_POWER_ON;
	int attempts = 1 + (o->retries > 0 ? o->retries : 0);
	struct fx f;
	int64_t t0 = now_ms();
	int attempt;

	if (fx_init(&f, o, b, c, detail, len) < 0)
		return -1;
	for (attempt = 1; attempt <= attempts; attempt++) {
		enum pgw_power p, seen = PGW_POWER_UNKNOWN; /* the last state the BMC reported */
		int sent;

		f.deadline = now_ms() + f.timeout_ms;
		f.permanent = f.timed_out = false;
		sent = be_control(&f, off);
		if (sent < 0 && f.permanent)
			break;
		/* a command that failed may still have been run (a lost reply): look once */
		for (;;) {
			char cmd_err[ERR_MAX];

			snprintf(cmd_err, sizeof(cmd_err), "%s", f.err);
			p = be_status(&f);
			if (p == want) {
				be_end(&f);
				snprintf(detail, len,
				         "%s: %s confirmed after %lld ms (%s, %d status read%s%s)",
				         f.addr, what, (long long)(now_ms() - t0), f.method,
				         f.status_reads, f.status_reads == 1 ? "" : "s",
				         attempt > 1
				             ? (attempt == 2 ? ", 2nd attempt" : ", retried")
				             : "");
				return 0;
			}
			if (sent < 0) {
				snprintf(f.err, sizeof(f.err), "%s", cmd_err); /* the cause */
				break;
			}
			if (p == PGW_POWER_UNKNOWN && f.permanent)
				break;
			if (p != PGW_POWER_UNKNOWN)
				seen = p;
			if (now_ms() + PGW_FENCE_POLL_MS >= f.deadline) {
				if (seen != PGW_POWER_UNKNOWN)
					fx_error(&f, false, true,
					         "the BMC still reports power %s after %d ms",
					         pgw_power_name(seen), f.timeout_ms);
				else
					f.timed_out = true;
				break;
			}
			sleep_ms(PGW_FENCE_POLL_MS);
		}
		be_end(&f);
		if (f.permanent)
			break;
	}
	be_end(&f);
	snprintf(detail, len, "%s: %s not confirmed: %s (%s; %d attempt%s, %lld ms)", f.addr, what,
	         f.err, f.method, attempt > attempts ? attempts : attempt,
	         (attempt > attempts ? attempts : attempt) == 1 ? "" : "s",
	         (long long)(now_ms() - t0));
	return -1;
}

int pgw_fence_off(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                  const struct pgw_fence_cred *c, char *detail, size_t len)
{
	return power_change(o, b, c, true, detail, len);
}

int pgw_fence_on(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                 const struct pgw_fence_cred *c, char *detail, size_t len)
{
	return power_change(o, b, c, false, detail, len);
}

enum pgw_power pgw_fence_status(const struct pgw_fence_opts *o, const struct pgw_fence_bmc *b,
                                const struct pgw_fence_cred *c, char *detail, size_t len)
{
	int attempts = 1 + (o->retries > 0 ? o->retries : 0);
	enum pgw_power p = PGW_POWER_UNKNOWN;
	int64_t t0 = now_ms();
	struct fx f;
	int attempt;

	if (fx_init(&f, o, b, c, detail, len) < 0)
		return PGW_POWER_UNKNOWN;
	for (attempt = 1; attempt <= attempts; attempt++) {
		f.deadline = now_ms() + f.timeout_ms;
		f.permanent = f.timed_out = false;
		p = be_status(&f);
		be_end(&f);
		if (p != PGW_POWER_UNKNOWN || f.permanent)
			break;
	}
	if (p != PGW_POWER_UNKNOWN)
		snprintf(detail, len, "%s: power is %s (%s, %lld ms)", f.addr, pgw_power_name(p),
		         f.method, (long long)(now_ms() - t0));
	else
		snprintf(detail, len, "%s: power status unknown: %s (%s, %lld ms)", f.addr, f.err,
		         f.method, (long long)(now_ms() - t0));
	return p;
}

const char *pgw_power_name(enum pgw_power p)
{
	return p == PGW_POWER_ON ? "on" : p == PGW_POWER_OFF ? "off" : "unknown";
}

/* --- addresses --- */

static bool parse_port(const char *s, int *port)
{
	long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (*s - '0');
		if (v > 65535)
			return false;
	}
	if (v < 1)
		return false;
	*port = (int)v;
	return true;
}

bool pgw_fence_parse_bmc(const char *addr, struct pgw_fence_bmc *b)
{
	const char *host, *end, *rest;
	int port = PGW_FENCE_DEFAULT_PORT;
	size_t n;

	if (!addr || !*addr)
		return false;
	if (addr[0] == '[') {
		host = addr + 1;
		end = strchr(host, ']');
		if (!end)
			return false;
		rest = end + 1;
		if (*rest && (*rest != ':' || !parse_port(rest + 1, &port)))
			return false;
	} else {
		const char *colon = strchr(addr, ':');

		host = addr;
		if (colon && strchr(colon + 1, ':')) {
			end = addr + strlen(addr); /* a bare IPv6 address, default port */
		} else if (colon) {
			end = colon;
			if (!parse_port(colon + 1, &port))
				return false;
		} else {
			end = addr + strlen(addr);
		}
	}
	n = (size_t)(end - host);
	if (n == 0 || n >= sizeof(b->host))
		return false;
	for (size_t i = 0; i < n; i++)
		if (isspace((unsigned char)host[i]) || host[i] == '@' || host[i] == '/' ||
		    host[i] == '[' || host[i] == ']' || !isprint((unsigned char)host[i]))
			return false; /* '@': user@host would put a user name where it does not
			                 belong */
	memcpy(b->host, host, n);
	b->host[n] = '\0';
	b->port = port;
	return true;
}

/* --- secrets --- */

/* Open a secret file and check that only its owner, the effective user, can use it. */
static FILE *open_secret(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;
	int fd;

	if (!path || !*path) {
		snprintf(err, errlen, "%s: no path configured", what);
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s %s: open: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s %s: fstat: %s", what, path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		close(fd);
		return NULL;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
		         "%s %s is owned by uid %u, not by uid %u (the user pgwarden runs as): "
		         "refusing to use it",
		         what, path, (unsigned)st.st_uid, (unsigned)geteuid());
		close(fd);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
		         "%s %s has mode %04o: group or others may access it; refusing to use it "
		         "(chmod 600 %s)",
		         what, path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		snprintf(err, errlen, "%s %s: fdopen: %s", what, path, strerror(errno));
		close(fd);
	}
	return f;
}

int pgw_fence_check_secret(const char *path, const char *what, char *err, size_t errlen)
{
	FILE *f = open_secret(path, what, err, errlen);

	if (!f)
		return -1;
	fclose(f);
	return 0;
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 &&
	       (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

int pgw_fence_load_creds(const char *path, const char *member, struct pgw_fence_cred *out,
                         char *err, size_t errlen)
{
	static const char what[] = "fence credentials file";
	struct pgw_fence_cred def;
	bool have_def = false, found = false;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	int rc = -1;
	FILE *f;

	memset(out, 0, sizeof(*out));
	memset(&def, 0, sizeof(def));
	f = open_secret(path, what, err, errlen);
	if (!f)
		return -1;
	while (!found && getline(&line, &cap, f) >= 0) {
		char *p = line, *name, *user, *pass;
		size_t nl, ul;
		struct pgw_fence_cred *dst;

		lineno++;
		chomp(line);
		p += strspn(p, " \t");
		if (!*p || *p == '#')
			continue;
		name = p;
		nl = strcspn(name, " \t");
		user = name + nl + strspn(name + nl, " \t");
		ul = strcspn(user, " \t");
		pass = user + ul + strspn(user + ul, " \t");
		if (nl == 0 || ul == 0 || !*pass) {
			/* never quote the line: it may hold a password */
			snprintf(err, errlen, "%s %s line %ld: expected MEMBER USERNAME PASSWORD",
			         what, path, lineno);
			goto out;
		}
		if (member && nl == strlen(member) && !strncmp(name, member, nl))
			dst = out;
		else if (!have_def && nl == 7 && !strncmp(name, "default", 7))
			dst = &def;
		else
			continue;
		if (ul >= sizeof(dst->username) || strlen(pass) >= sizeof(dst->password)) {
			snprintf(
			    err, errlen,
			    "%s %s line %ld: user name (max %zu bytes) or password (max %zu bytes) "
			    "too long",
			    what, path, lineno, sizeof(dst->username) - 1,
			    sizeof(dst->password) - 1);
			goto out;
		}
		memcpy(dst->username, user, ul);
		dst->username[ul] = '\0';
		snprintf(dst->password, sizeof(dst->password), "%s", pass);
		if (dst == out)
			found = true;
		else
			have_def = true;
	}
	if (!found && have_def) {
		*out = def;
		found = true;
	}
	if (!found) {
		snprintf(err, errlen, "%s %s has no line for %s and no \"default\" line", what,
		         path, member ? member : "(no member)");
		goto out;
	}
	rc = 0;
out:
	if (line)
		explicit_bzero(line, cap);
	free(line);
	explicit_bzero(&def, sizeof(def));
	if (rc < 0)
		explicit_bzero(out, sizeof(*out));
	fclose(f);
	return rc;
}

int pgw_fence_read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = -1;
	FILE *f;

	if (outlen)
		out[0] = '\0';
	f = open_secret(path, "password file", err, errlen);
	if (!f)
		return -1;
	n = getline(&line, &cap, f);
	if (n < 0) {
		snprintf(err, errlen, "password file %s is empty", path);
		goto out;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if ((size_t)n >= outlen) {
		snprintf(err, errlen, "password file %s: password longer than %zu bytes", path,
		         outlen ? outlen - 1 : 0);
		goto out;
	}
	memcpy(out, line, (size_t)n + 1);
	rc = 0;
out:
	if (line)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	return rc;
}

/*
 * test_fence.c - power fencing (fencing/fence.c) without a BMC: the fence-agents stdin
 * protocol against a fake agent this test writes (what the agent receives on stdin, that
 * the password is in neither its argv nor its environment, exit-code mapping, polling
 * until the agent reports off, a fence that never gets confirmed, retries, the process
 * group killed when the bound passes); the ipmitool backend against a fake ipmitool (the
 * password through fd 3, "Chassis Power is off" parsing); a native IPMI fence of a port
 * where nothing answers stays within its bound; the credentials file (lookup, default,
 * refusal of a file group or others may read, of a file owned by someone else, of a
 * malformed line without echoing it); BMC address parsing.  Runs as a normal user; the
 * real-BMC tests are tests/integration/test_fence_devices.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "fence.h"

#define PASSWORD "s3cret-Pa55word"

struct fixture {
	char dir[64];
	char agent[128];
	struct pgw_fence_bmc bmc;
	struct pgw_fence_cred cred;
	struct pgw_fence_opts opts;
};

/* The fake agent: records each call (stdin, argv, environment), keeps the "power" in a
 * state file, and behaves according to DIR/mode. */
static const char agent_script[] =
    "#!/bin/sh\n"
    "d='%s'\n"
    "n=$(cat \"$d/calls\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"$d/calls\"\n"
    "cat > \"$d/stdin.$n\"\n"
    "echo \"$0 $*\" > \"$d/argv.$n\"\n"
    "env > \"$d/env.$n\"\n"
    "action=$(sed -n 's/^action=//p' \"$d/stdin.$n\")\n"
    "mode=$(cat \"$d/mode\" 2>/dev/null)\n"
    "state=$(cat \"$d/state\" 2>/dev/null)\n"
    "case \"$mode:$action\" in\n"
    "hang:*) sleep 30 & echo $! > \"$d/child.pid\"; wait; exit 0 ;;\n"
    "fail:off|fail:on) echo 'Failed: the power switch is broken' >&2; exit 1 ;;\n"
    "flaky:off) [ $n -eq 1 ] && { echo 'Failed: first try' >&2; exit 1; }\n"
    "           echo off > \"$d/state\"; exit 0 ;;\n"
    "stuck:off|stuck:on) exit 0 ;;\n"
    "async:off) setsid sh -c \"sleep 0.3; echo off > '$d/state'\" </dev/null >/dev/null 2>&1 &\n"
    "           sleep 0.1; exit 0 ;;\n"
    "*:status) [ \"$state\" = off ] && exit 2; [ \"$state\" = on ] && exit 0\n"
    "          echo 'Failed: no status' >&2; exit 1 ;;\n"
    "*:off) echo off > \"$d/state\"; echo \"Success: Powered OFF\"; exit 0 ;;\n"
    "*:on) echo on > \"$d/state\"; echo \"Success: Powered ON\"; exit 0 ;;\n"
    "esac\n"
    "exit 1\n";

/* The fake ipmitool: the password comes from the file named by -f. */
static const char ipmitool_script[] =
    "#!/bin/sh\n"
    "d='%s'\n"
    "echo \"$*\" >> \"$d/ipmitool.argv\"\n"
    "pwfile=''; prev=''\n"
    "for a in \"$@\"; do [ \"$prev\" = -f ] && pwfile=$a; prev=$a; done\n"
    "pw=$(cat \"$pwfile\")\n"
    "[ \"$pw\" = '" PASSWORD "' ] || { echo 'Error: Unable to establish IPMI v2 / RMCP+ "
    "session' >&2; exit 1; }\n"
    "for last in \"$@\"; do :; done\n"
    "case $last in\n"
    "off) echo off > \"$d/state\"; echo 'Chassis Power Control: Down/Off' ;;\n"
    "on) echo on > \"$d/state\"; echo 'Chassis Power Control: Up/On' ;;\n"
    "status) echo \"Chassis Power is $(cat \"$d/state\")\" ;;\n"
    "esac\n";

static void write_file(const char *path, const char *data, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(data, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_file(const char *dir, const char *name)
{
	char path[256], *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static void set(const struct fixture *fx, const char *name, const char *value)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	write_file(path, value, 0600);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char script[sizeof(agent_script) + 64];

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/pgw-fence-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->agent, sizeof(fx->agent), "%s/fake_agent", fx->dir);
	snprintf(script, sizeof(script), agent_script, fx->dir);
	write_file(fx->agent, script, 0700);
	set(fx, "state", "on\n");
	assert_true(pgw_fence_parse_bmc("127.0.0.1:9001", &fx->bmc));
	fx->bmc.lanplus = true;
	fx->bmc.cipher_suite = 3;
	snprintf(fx->bmc.privilege, sizeof(fx->bmc.privilege), "OPERATOR");
	snprintf(fx->cred.username, sizeof(fx->cred.username), "fenceuser");
	snprintf(fx->cred.password, sizeof(fx->cred.password), PASSWORD);
	fx->opts.agent = PGW_FENCE_EXTERNAL;
	fx->opts.agent_path = fx->agent;
	fx->opts.timeout_ms = 3000;
	fx->opts.retries = 0;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	testutil_remove_dir(fx->dir);
	free(fx);
	return 0;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* kill(pid, 0) also succeeds on a zombie nobody reaped yet */
static bool alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int calls(const struct fixture *fx)
{
	char *s = read_file(fx->dir, "calls");
	int n = s ? atoi(s) : 0;

	free(s);
	return n;
}

static void assert_no_password(const char *s)
{
	if (s && strstr(s, PASSWORD))
		fail_msg("the password leaked into: %s", s);
}

/* --- the agent protocol --- */

static void test_agent_off_protocol(void **state)
{
	struct fixture *fx = *state;
	char detail[512], name[32];
	char *in, *st;

	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
	assert_non_null(strstr(detail, "127.0.0.1:9001: power off confirmed"));
	assert_no_password(detail);
	assert_int_equal(calls(fx), 2); /* off, then one status read */

	in = read_file(fx->dir, "stdin.1");
	assert_non_null(in);
	assert_string_equal(in, "action=off\n"
	                        "ip=127.0.0.1\n"
	                        "ipport=9001\n"
	                        "username=fenceuser\n"
	                        "password=" PASSWORD "\n"
	                        "lanplus=1\n"
	                        "cipher=3\n"
	                        "privlvl=operator\n"
	                        "power_wait=0\n");
	free(in);
	in = read_file(fx->dir, "stdin.2");
	assert_non_null(strstr(in, "action=status\n"));
	free(in);
	st = read_file(fx->dir, "state");
	assert_string_equal(st, "off\n");
	free(st);
	/* the password went through stdin only: never argv, never the environment */
	for (int i = 1; i <= 2; i++) {
		char *argv, *env;

		snprintf(name, sizeof(name), "argv.%d", i);
		argv = read_file(fx->dir, name);
		snprintf(name, sizeof(name), "env.%d", i);
		env = read_file(fx->dir, name);
		assert_non_null(argv);
		assert_non_null(env);
		assert_no_password(argv);
		assert_no_password(env);
		assert_non_null(strstr(env, "PYTHONWARNINGS=ignore"));
		free(argv);
		free(env);
	}
}

static void test_agent_options_omitted(void **state)
{
	struct fixture *fx = *state;
	char detail[512], *in;

	fx->bmc.lanplus = false;
	fx->bmc.cipher_suite = -1;
	fx->bmc.privilege[0] = '\0';
	assert_int_equal(pgw_fence_on(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
	in = read_file(fx->dir, "stdin.1");
	assert_non_null(strstr(in, "action=on\n"));
	assert_null(strstr(in, "lanplus"));
	assert_null(strstr(in, "cipher"));
	assert_non_null(strstr(in, "privlvl=administrator\n"));
	free(in);
}

static void test_agent_status_mapping(void **state)
{
	struct fixture *fx = *state;
	char detail[512];

	set(fx, "state", "on\n");
	assert_int_equal(pgw_fence_status(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)),
	                 PGW_POWER_ON);
	assert_non_null(strstr(detail, "power is on"));
	set(fx, "state", "off\n");
	assert_int_equal(pgw_fence_status(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)),
	                 PGW_POWER_OFF);
	set(fx, "state", "???\n"); /* exit 1 */
	assert_int_equal(pgw_fence_status(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)),
	                 PGW_POWER_UNKNOWN);
	assert_non_null(strstr(detail, "exit 1"));
	assert_non_null(strstr(detail, "Failed: no status"));
	assert_string_equal(pgw_power_name(PGW_POWER_UNKNOWN), "unknown");
}

static void test_agent_already_off(void **state)
{
	struct fixture *fx = *state;
	char detail[512];

	set(fx, "state", "off\n");
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
}

/* The agent says "done" but the power goes off only later: poll until it reads off. */
static void test_agent_async_off_polls(void **state)
{
	struct fixture *fx = *state;
	char detail[512];
	double t0 = mono(), dt;

	set(fx, "mode", "async");
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
	dt = mono() - t0;
	assert_true(dt >= 0.3);
	assert_true(calls(fx) >= 3); /* off, at least one "on", then "off" */
	assert_non_null(strstr(detail, "status reads"));
}

/* The agent claims success, the power never goes off: not confirmed, within the bound. */
static void test_agent_unconfirmed(void **state)
{
	struct fixture *fx = *state;
	char detail[512];
	double t0 = mono(), dt;

	set(fx, "mode", "stuck");
	fx->opts.timeout_ms = 800;
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	dt = mono() - t0;
	assert_true(dt < 1.5);
	assert_non_null(strstr(detail, "not confirmed"));
	assert_non_null(strstr(detail, "still reports power on"));
	assert_no_password(detail);
}

static void test_agent_failure_message(void **state)
{
	struct fixture *fx = *state;
	char detail[512];

	set(fx, "mode", "fail");
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	assert_non_null(strstr(detail, "action=off: exit 1: Failed: the power switch is broken"));
	/* a failed command: one status read to see whether it happened anyway, no more */
	assert_int_equal(calls(fx), 2);
}

static void test_agent_retries(void **state)
{
	struct fixture *fx = *state;
	char detail[512];

	set(fx, "mode", "flaky");
	fx->opts.retries = 0;
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	set(fx, "calls", "0\n");
	fx->opts.retries = 1;
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
	assert_non_null(strstr(detail, "2nd attempt"));
}

/* An agent that hangs is killed with its whole process group when the bound passes. */
static void test_agent_timeout_kills_group(void **state)
{
	struct fixture *fx = *state;
	char detail[512], *pid_s;
	double t0 = mono(), dt;
	pid_t child;

	set(fx, "mode", "hang");
	fx->opts.timeout_ms = 500;
	fx->opts.retries = 1;
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	dt = mono() - t0;
	if (dt > 1.4) /* 2 attempts of 500 ms */
		fail_msg("took %.2f s", dt);
	assert_non_null(strstr(detail, "killed"));
	assert_non_null(strstr(detail, "2 attempts"));
	pid_s = read_file(fx->dir, "child.pid");
	assert_non_null(pid_s);
	child = (pid_t)atoi(pid_s);
	free(pid_s);
	assert_true(child > 0);
	/* the agent's own child (sleep 30) is gone too */
	for (int i = 0; i < 100 && alive(child); i++)
		usleep(10000);
	assert_false(alive(child));
}

static void test_agent_missing(void **state)
{
	struct fixture *fx = *state;
	char detail[512];

	fx->opts.agent_path = "/nonexistent/fence_x";
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	assert_non_null(strstr(detail, "/nonexistent/fence_x"));
	fx->opts.agent_path = NULL;
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	/* a bad privilege name is refused before anything runs */
	fx->opts.agent_path = fx->agent;
	snprintf(fx->bmc.privilege, sizeof(fx->bmc.privilege), "ROOT");
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	assert_non_null(strstr(detail, "privilege"));
	assert_int_equal(calls(fx), 0);
}

/* --- ipmitool backend --- */

static void test_ipmitool_backend(void **state)
{
	struct fixture *fx = *state;
	char detail[512], tool[160], script[sizeof(ipmitool_script) + 64], *argv;

	snprintf(tool, sizeof(tool), "%s/ipmitool", fx->dir);
	snprintf(script, sizeof(script), ipmitool_script, fx->dir);
	write_file(tool, script, 0700);
	fx->opts.agent = PGW_FENCE_IPMI;
	fx->opts.agent_path = tool;
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
	assert_non_null(strstr(detail, "ipmitool lanplus, cipher 3"));
	assert_int_equal(pgw_fence_status(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)),
	                 PGW_POWER_OFF);
	assert_int_equal(pgw_fence_on(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), 0);
	argv = read_file(fx->dir, "ipmitool.argv");
	assert_non_null(argv);
	assert_no_password(argv);
	assert_non_null(strstr(argv, "-I lanplus -H 127.0.0.1 -p 9001 -U fenceuser -f /dev/fd/3 "
	                             "-L OPERATOR -C 3"));
	assert_non_null(strstr(argv, "chassis power off"));
	free(argv);

	/* a wrong password: fails with ipmitool's message, the state is untouched */
	snprintf(fx->cred.password, sizeof(fx->cred.password), "wrong");
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	assert_non_null(strstr(detail, "Unable to establish IPMI v2 / RMCP+ session"));
	argv = read_file(fx->dir, "state");
	assert_string_equal(argv, "on\n");
	free(argv);
}

/* --- native IPMI: a port where nothing answers --- */

static void test_native_unreachable_bounded(void **state)
{
#ifdef PGW_HAVE_FREEIPMI
	struct fixture *fx = *state;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	char detail[512], addr[64];
	double t0, dt;
	int s;

	/* a UDP port that is bound (so nobody else gets it) but never answers */
	s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	assert_true(pgw_fence_parse_bmc(addr, &fx->bmc));
	fx->opts.agent = PGW_FENCE_IPMI;
	fx->opts.agent_path = NULL;
	fx->opts.timeout_ms = 700;
	t0 = mono();
	assert_int_equal(pgw_fence_off(&fx->opts, &fx->bmc, &fx->cred, detail, sizeof(detail)), -1);
	dt = mono() - t0;
	close(s);
	if (dt > 0.85)
		fail_msg("a 700 ms fence took %.3f s: %s", dt, detail);
	assert_non_null(strstr(detail, "no answer"));
	assert_non_null(strstr(detail, "native IPMI 2.0"));
	assert_no_password(detail);
#else
	(void)state;
	skip();
#endif
}

/* --- credentials --- */

static void test_creds_lookup(void **state)
{
	struct fixture *fx = *state;
	char path[160], err[512];
	struct pgw_fence_cred c;

	snprintf(path, sizeof(path), "%s/fencing.secret", fx->dir);
	write_file(path,
	           "# MEMBER USERNAME PASSWORD\n"
	           "\n"
	           "default   admin    adminpass\n"
	           "node2\toperator\tpass with spaces  \n"
	           "node3 u3 p3\r\n",
	           0600);
	assert_int_equal(pgw_fence_load_creds(path, "node2", &c, err, sizeof(err)), 0);
	assert_string_equal(c.username, "operator");
	assert_string_equal(c.password, "pass with spaces");
	assert_int_equal(pgw_fence_load_creds(path, "node3", &c, err, sizeof(err)), 0);
	assert_string_equal(c.password, "p3");
	assert_int_equal(pgw_fence_load_creds(path, "node9", &c, err, sizeof(err)), 0);
	assert_string_equal(c.username, "admin");
	assert_string_equal(c.password, "adminpass");
	/* "node" is not "node2" */
	assert_int_equal(pgw_fence_load_creds(path, "node", &c, err, sizeof(err)), 0);
	assert_string_equal(c.username, "admin");

	write_file(path, "node2 a b\n", 0400);
	assert_int_equal(pgw_fence_load_creds(path, "node1", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "no line for node1"));
	assert_string_equal(c.password, "");
}

static void test_creds_mode_refused(void **state)
{
	struct fixture *fx = *state;
	char path[160], err[512];
	struct pgw_fence_cred c;
	static const mode_t bad[] = {0644, 0640, 0604, 0620, 0602, 0610};

	snprintf(path, sizeof(path), "%s/fencing.secret", fx->dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char mode[16];

		write_file(path, "default admin " PASSWORD "\n", bad[i]);
		assert_int_equal(pgw_fence_load_creds(path, "node1", &c, err, sizeof(err)), -1);
		snprintf(mode, sizeof(mode), "mode %04o", (unsigned)bad[i]);
		assert_non_null(strstr(err, path));
		assert_non_null(strstr(err, mode));
		assert_no_password(err);
		assert_string_equal(c.password, "");
	}
	/* and the single password file of pgwarden-fence / bmc.password_file */
	write_file(path, PASSWORD "\n", 0644);
	assert_int_equal(
	    pgw_fence_read_secret(path, c.password, sizeof(c.password), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mode 0644"));
	chmod(path, 0600);
	assert_int_equal(
	    pgw_fence_read_secret(path, c.password, sizeof(c.password), err, sizeof(err)), 0);
	assert_string_equal(c.password, PASSWORD);

	/* a directory, a missing file */
	assert_int_equal(pgw_fence_load_creds(fx->dir, "node1", &c, err, sizeof(err)), -1);
	assert_int_equal(pgw_fence_load_creds("/nonexistent/x", "node1", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/x"));
}

static void test_creds_owner_refused(void **state)
{
	struct fixture *fx = *state;
	char path[160], err[512];
	struct pgw_fence_cred c;

	if (geteuid() != 0)
		skip(); /* only root can give a file away */
	snprintf(path, sizeof(path), "%s/fencing.secret", fx->dir);
	write_file(path, "default admin adminpass\n", 0600);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(pgw_fence_load_creds(path, "node1", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "owned by uid 65534"));
}

static void test_creds_malformed(void **state)
{
	struct fixture *fx = *state;
	char path[160], err[512], longpw[200];
	struct pgw_fence_cred c;

	snprintf(path, sizeof(path), "%s/fencing.secret", fx->dir);
	write_file(path, "default admin adminpass\nnode2 " PASSWORD "\n", 0600);
	assert_int_equal(pgw_fence_load_creds(path, "node2", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "line 2"));
	assert_no_password(err); /* the line is not quoted */

	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	{
		char text[300];

		snprintf(text, sizeof(text), "node2 admin %s\n", longpw);
		write_file(path, text, 0600);
	}
	assert_int_equal(pgw_fence_load_creds(path, "node2", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
}

/* --- addresses --- */

static void test_parse_bmc(void **state)
{
	struct pgw_fence_bmc b;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.lanplus = true;
	b.cipher_suite = 3;
	assert_true(pgw_fence_parse_bmc("127.0.0.1", &b));
	assert_string_equal(b.host, "127.0.0.1");
	assert_int_equal(b.port, 623);
	assert_true(b.lanplus); /* the other fields are left alone */
	assert_int_equal(b.cipher_suite, 3);
	assert_true(pgw_fence_parse_bmc("127.0.0.1:9001", &b));
	assert_string_equal(b.host, "127.0.0.1");
	assert_int_equal(b.port, 9001);
	assert_true(pgw_fence_parse_bmc("bmc-node1.example.net:65535", &b));
	assert_string_equal(b.host, "bmc-node1.example.net");
	assert_int_equal(b.port, 65535);
	assert_true(pgw_fence_parse_bmc("[::1]:700", &b));
	assert_string_equal(b.host, "::1");
	assert_int_equal(b.port, 700);
	assert_true(pgw_fence_parse_bmc("[fe80::1]", &b));
	assert_int_equal(b.port, 623);
	assert_true(pgw_fence_parse_bmc("fe80::2", &b));
	assert_string_equal(b.host, "fe80::2");
	assert_int_equal(b.port, 623);

	assert_false(pgw_fence_parse_bmc(NULL, &b));
	assert_false(pgw_fence_parse_bmc("", &b));
	assert_false(pgw_fence_parse_bmc(":623", &b));
	assert_false(pgw_fence_parse_bmc("host:", &b));
	assert_false(pgw_fence_parse_bmc("host:0", &b));
	assert_false(pgw_fence_parse_bmc("host:65536", &b));
	assert_false(pgw_fence_parse_bmc("host:62x", &b));
	assert_false(pgw_fence_parse_bmc("host:-1", &b));
	assert_false(pgw_fence_parse_bmc("admin@host", &b));
	assert_false(pgw_fence_parse_bmc("admin:pw@host:623", &b));
	assert_false(pgw_fence_parse_bmc("a b", &b));
	assert_false(pgw_fence_parse_bmc("[::1", &b));
	assert_false(pgw_fence_parse_bmc("[::1]x", &b));
	assert_false(pgw_fence_parse_bmc("[]:623", &b));
	{
		char longhost[300];

		memset(longhost, 'h', sizeof(longhost) - 1);
		longhost[sizeof(longhost) - 1] = '\0';
		assert_false(pgw_fence_parse_bmc(longhost, &b));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_agent_off_protocol, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_options_omitted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_status_mapping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_already_off, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_async_off_polls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_unconfirmed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_failure_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_retries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_timeout_kills_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_agent_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ipmitool_backend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_native_unreachable_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_creds_lookup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_creds_mode_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_creds_owner_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_creds_malformed, setup, teardown),
	    cmocka_unit_test(test_parse_bmc),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

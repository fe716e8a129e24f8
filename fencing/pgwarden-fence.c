/*
 * pgwarden-fence.c - the fencing layer from the command line, for operators and tests:
 * power off/on/status of one server through its BMC with exactly the code the daemon
 * uses (fencing/fence.c), and the audit log's verify, tail and append (fencing/audit.c).
 *
 *   pgwarden-fence off|on|status --bmc HOST[:PORT] (--user U --password-file F |
 *                  --credentials FILE --member NAME) [--lanplus|--lan] [--cipher N]
 *                  [--privilege ADMINISTRATOR|OPERATOR|USER] [--agent PATH |
 *                  --ipmitool[=PATH]] [--timeout SECONDS] [--retries N]
 *   pgwarden-fence verify FILE [--expect-prev HASH]   one file of the audit log
 *   pgwarden-fence verify-all FILE [--key KEYFILE]    FILE.N ... FILE.1 FILE as one chain
 *                                                     (--key: a keyed chain, as root)
 *   pgwarden-fence tail FILE [N]                      the last N records (10) as JSON
 *   pgwarden-fence append FILE --action A [--target T] [--bmc B] [--result R]
 *                  [--reason R] [--cluster C] [--actor A] [--count N] [--key KEYFILE]
 *
 * off/on print the one-line detail and exit 0 only when the BMC confirmed the new power
 * state; status prints "on" or "off" and the detail (exit 0), or exits 1 when the state
 * is unknown.  verify exits 0 when the chain is intact, 1 when it is not (the message
 * names the first bad line), 3 when the file cannot be read.  Usage errors exit 2.
 * Passwords come from files that only their owner may read, never from the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "fence.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: pgwarden-fence off|on|status --bmc HOST[:PORT] (--user U --password-file F "
	        "| --credentials FILE --member NAME)\n"
	        "                      [--lanplus|--lan] [--cipher N] [--privilege P] [--agent "
	        "PATH | --ipmitool[=PATH]]\n"
	        "                      [--timeout SECONDS] [--retries N]\n"
	        "       pgwarden-fence verify FILE [--expect-prev HASH]\n"
	        "       pgwarden-fence verify-all FILE [--key KEYFILE]\n"
	        "       pgwarden-fence tail FILE [N]\n"
	        "       pgwarden-fence append FILE --action A [--target T] [--bmc B] [--result R] "
	        "[--reason R] [--cluster C] [--actor A] [--count N] [--key KEYFILE]\n");
}

static bool parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

enum {
	OPT_BMC = 256,
	OPT_USER,
	OPT_PASSWORD_FILE,
	OPT_CREDENTIALS,
	OPT_MEMBER,
	OPT_LANPLUS,
	OPT_LAN,
	OPT_CIPHER,
	OPT_PRIVILEGE,
	OPT_AGENT,
	OPT_IPMITOOL,
	OPT_TIMEOUT,
	OPT_RETRIES,
	OPT_EXPECT_PREV,
	OPT_ACTION,
	OPT_TARGET,
	OPT_RESULT,
	OPT_REASON,
	OPT_CLUSTER,
	OPT_ACTOR,
	OPT_COUNT,
	OPT_KEY,
	OPT_HELP,
};

static const struct option options[] = {
    {"bmc", required_argument, NULL, OPT_BMC},
    {"user", required_argument, NULL, OPT_USER},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"credentials", required_argument, NULL, OPT_CREDENTIALS},
    {"member", required_argument, NULL, OPT_MEMBER},
    {"lanplus", no_argument, NULL, OPT_LANPLUS},
    {"lan", no_argument, NULL, OPT_LAN},
    {"cipher", required_argument, NULL, OPT_CIPHER},
    {"privilege", required_argument, NULL, OPT_PRIVILEGE},
    {"agent", required_argument, NULL, OPT_AGENT},
    {"ipmitool", optional_argument, NULL, OPT_IPMITOOL},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"expect-prev", required_argument, NULL, OPT_EXPECT_PREV},
    {"action", required_argument, NULL, OPT_ACTION},
    {"target", required_argument, NULL, OPT_TARGET},
    {"result", required_argument, NULL, OPT_RESULT},
    {"reason", required_argument, NULL, OPT_REASON},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"actor", required_argument, NULL, OPT_ACTOR},
    {"count", required_argument, NULL, OPT_COUNT},
    {"key", required_argument, NULL, OPT_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct args {
	const char *cmd, *file, *bmc, *user, *password_file, *credentials, *member;
	const char *expect_prev, *action, *target, *result, *reason, *cluster, *actor;
	const char *tail_n, *key_file;
	struct pgw_fence_opts opts;
	bool lanplus;
	long cipher, count;
	char privilege[16];
};

/* 0 ok, 2 usage error (reported), 1 --help */
static int parse_args(struct args *a, int argc, char **argv)
{
	long v;
	int c;

	memset(a, 0, sizeof(*a));
	a->lanplus = true;
	a->cipher = -1;
	a->count = 1;
	a->opts.agent = PGW_FENCE_IPMI;
	a->opts.timeout_ms = 10000;
	a->opts.retries = 0;
	snprintf(a->privilege, sizeof(a->privilege), "ADMINISTRATOR");
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_BMC:
			a->bmc = optarg;
			break;
		case OPT_USER:
			a->user = optarg;
			break;
		case OPT_PASSWORD_FILE:
			a->password_file = optarg;
			break;
		case OPT_CREDENTIALS:
			a->credentials = optarg;
			break;
		case OPT_MEMBER:
			a->member = optarg;
			break;
		case OPT_LANPLUS:
			a->lanplus = true;
			break;
		case OPT_LAN:
			a->lanplus = false;
			break;
		case OPT_CIPHER:
			if (!parse_int(optarg, -1, 255, &a->cipher)) {
				fprintf(stderr,
				        "pgwarden-fence: --cipher: expected -1..255, got \"%s\"\n",
				        optarg);
				return 2;
			}
			break;
		case OPT_PRIVILEGE:
			snprintf(a->privilege, sizeof(a->privilege), "%s", optarg);
			break;
		case OPT_AGENT:
			a->opts.agent = PGW_FENCE_EXTERNAL;
			a->opts.agent_path = optarg;
			break;
		case OPT_IPMITOOL:
			a->opts.agent = PGW_FENCE_IPMI;
			a->opts.agent_path = optarg ? optarg : "ipmitool";
			break;
		case OPT_TIMEOUT: {
			char *end;
			double s;

			errno = 0;
			s = strtod(optarg, &end);
			if (errno || end == optarg || *end || s <= 0 || s > 3600) {
				fprintf(stderr,
				        "pgwarden-fence: --timeout: expected seconds (0 < s <= "
				        "3600), got "
				        "\"%s\"\n",
				        optarg);
				return 2;
			}
			a->opts.timeout_ms = (int)(s * 1000 + 0.5);
			break;
		}
		case OPT_RETRIES:
			if (!parse_int(optarg, 0, 100, &v)) {
				fprintf(stderr,
				        "pgwarden-fence: --retries: expected 0..100, got \"%s\"\n",
				        optarg);
				return 2;
			}
			a->opts.retries = (int)v;
			break;
		case OPT_EXPECT_PREV:
			a->expect_prev = optarg;
			break;
		case OPT_KEY:
			a->key_file = optarg;
			break;
		case OPT_ACTION:
			a->action = optarg;
			break;
		case OPT_TARGET:
			a->target = optarg;
			break;
		case OPT_RESULT:
			a->result = optarg;
			break;
		case OPT_REASON:
			a->reason = optarg;
			break;
		case OPT_CLUSTER:
			a->cluster = optarg;
			break;
		case OPT_ACTOR:
			a->actor = optarg;
			break;
		case OPT_COUNT:
			if (!parse_int(optarg, 1, 100000000, &a->count)) {
				fprintf(stderr,
				        "pgwarden-fence: --count: expected a positive number\n");
				return 2;
			}
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	a->cmd = argv[optind++];
	if (optind < argc)
		a->file = argv[optind++];
	if (optind < argc)
		a->tail_n = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "pgwarden-fence: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	return 0;
}

static int power_cmd(struct args *a)
{
	struct pgw_fence_bmc b;
	struct pgw_fence_cred cred;
	char err[512], detail[512];
	int rc;

	memset(&b, 0, sizeof(b));
	memset(&cred, 0, sizeof(cred));
	if (a->file) {
		fprintf(stderr, "pgwarden-fence %s: unexpected argument \"%s\"\n", a->cmd, a->file);
		return 2;
	}
	if (!a->bmc || !pgw_fence_parse_bmc(a->bmc, &b)) {
		fprintf(stderr, "pgwarden-fence %s: --bmc HOST[:PORT] is %s\n", a->cmd,
		        a->bmc ? "malformed" : "required");
		return 2;
	}
	b.lanplus = a->lanplus;
	b.cipher_suite = (int)a->cipher;
	snprintf(b.privilege, sizeof(b.privilege), "%s", a->privilege);
	if (a->credentials) {
		if (!a->member) {
			fprintf(stderr, "pgwarden-fence %s: --credentials needs --member\n",
			        a->cmd);
			return 2;
		}
		if (pgw_fence_load_creds(a->credentials, a->member, &cred, err, sizeof(err)) < 0) {
			fprintf(stderr, "pgwarden-fence: %s\n", err);
			return 1;
		}
	} else {
		if (!a->user || !a->password_file) {
			fprintf(
			    stderr,
			    "pgwarden-fence %s: --user and --password-file (or --credentials and "
			    "--member) are required\n",
			    a->cmd);
			return 2;
		}
		if (strlen(a->user) >= sizeof(cred.username)) {
			fprintf(stderr, "pgwarden-fence: --user: longer than %zu bytes\n",
			        sizeof(cred.username) - 1);
			return 2;
		}
		snprintf(cred.username, sizeof(cred.username), "%s", a->user);
		if (pgw_fence_read_secret(a->password_file, cred.password, sizeof(cred.password),
		                          err, sizeof(err)) < 0) {
			fprintf(stderr, "pgwarden-fence: %s\n", err);
			return 1;
		}
	}
	if (!strcmp(a->cmd, "off") || !strcmp(a->cmd, "on")) {
		rc = !strcmp(a->cmd, "off")
		         ? pgw_fence_off(&a->opts, &b, &cred, detail, sizeof(detail))
		         : pgw_fence_on(&a->opts, &b, &cred, detail, sizeof(detail));
		fprintf(rc == 0 ? stdout : stderr, "%s%s\n",
		        rc == 0 ? "" : "pgwarden-fence: ", detail);
		rc = rc == 0 ? 0 : 1;
	} else {
		enum pgw_power p = pgw_fence_status(&a->opts, &b, &cred, detail, sizeof(detail));

		if (p == PGW_POWER_UNKNOWN) {
			fprintf(stderr, "pgwarden-fence: %s\n", detail);
			rc = 1;
		} else {
			printf("%s\n%s\n", pgw_power_name(p), detail);
			rc = 0;
		}
	}
	explicit_bzero(&cred, sizeof(cred));
	return rc;
}

static int append_cmd(const struct args *a)
{
	struct pgw_audit_rec r = {.action = a->action,
	                          .target = a->target,
	                          .bmc = a->bmc,
	                          .result = a->result,
	                          .reason = a->reason};
	struct pgw_audit *au;
	unsigned char key[PGW_AUDIT_KEY_MAX + 1];
	size_t key_len = 0;
	char err[512];
	int rc = 0;

	if (!a->action) {
		fprintf(stderr, "pgwarden-fence append: --action is required\n");
		return 2;
	}
	if (a->key_file && pgw_audit_read_key(a->key_file, key, &key_len, err, sizeof(err)) != 0) {
		fprintf(stderr, "pgwarden-fence: %s\n", err);
		return 3;
	}
	au = pgw_audit_open_keyed(a->file, a->cluster ? a->cluster : "", a->actor ? a->actor : "",
	                          key_len ? key : NULL, key_len, err, sizeof(err));
	explicit_bzero(key, sizeof(key));
	if (!au) {
		fprintf(stderr, "pgwarden-fence: %s\n", err);
		return 1;
	}
	for (long i = 0; i < a->count && rc == 0; i++)
		if (pgw_audit_append(au, &r, err, sizeof(err)) < 0) {
			fprintf(stderr, "pgwarden-fence: %s\n", err);
			rc = 1;
		}
	if (rc == 0)
		printf("seq %lld, hash %s\n", (long long)pgw_audit_next_seq(au) - 1,
		       pgw_audit_last_hash(au));
	pgw_audit_close(au);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a;
	char err[1024];
	int rc = parse_args(&a, argc, argv);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (!strcmp(a.cmd, "off") || !strcmp(a.cmd, "on") || !strcmp(a.cmd, "status"))
		return power_cmd(&a);
	if (!a.file) {
		fprintf(stderr, "pgwarden-fence %s: FILE is required\n", a.cmd);
		return 2;
	}
	if (!strcmp(a.cmd, "verify") || !strcmp(a.cmd, "verify-all")) {
		if (a.tail_n) {
			fprintf(stderr, "pgwarden-fence: unexpected argument \"%s\"\n", a.tail_n);
			return 2;
		}
		if (a.key_file) {
			/* a keyed chain (fencing.audit_key_file): the whole chain, with the key */
			unsigned char key[PGW_AUDIT_KEY_MAX + 1];
			size_t key_len;

			if (strcmp(a.cmd, "verify-all") != 0) {
				fprintf(stderr, "pgwarden-fence: --key goes with verify-all\n");
				return 2;
			}
			if (pgw_audit_read_key(a.key_file, key, &key_len, err, sizeof(err)) != 0) {
				fprintf(stderr, "pgwarden-fence: %s\n", err);
				return 3;
			}
			rc = pgw_audit_verify_all_keyed(a.file, key, key_len, err, sizeof(err));
			explicit_bzero(key, sizeof(key));
		} else {
			rc = !strcmp(a.cmd, "verify")
			         ? pgw_audit_verify(a.file, a.expect_prev, err, sizeof(err))
			         : pgw_audit_verify_all(a.file, err, sizeof(err));
		}
		if (rc == 0) {
			printf("%s: chain intact\n", a.file);
			return 0;
		}
		fprintf(stderr, "pgwarden-fence: %s\n", err);
		return rc < 0 ? 3 : 1;
	}
	if (!strcmp(a.cmd, "tail")) {
		long n = 10;
		char *json;

		if (a.tail_n && !parse_int(a.tail_n, 0, 1000000, &n)) {
			fprintf(stderr, "pgwarden-fence tail: N must be a number\n");
			return 2;
		}
		json = pgw_audit_tail_json(a.file, (int)n);
		if (!json) {
			fprintf(stderr, "pgwarden-fence: cannot read %s: %s\n", a.file,
			        strerror(errno));
			return 3;
		}
		printf("%s\n", json);
		free(json);
		return 0;
	}
	if (!strcmp(a.cmd, "append")) {
		if (a.tail_n) {
			fprintf(stderr, "pgwarden-fence: unexpected argument \"%s\"\n", a.tail_n);
			return 2;
		}
		return append_cmd(&a);
	}
	fprintf(stderr, "pgwarden-fence: unknown command \"%s\"\n", a.cmd);
	usage(stderr);
	return 2;
}

/*
 * ctl_args.c - pgwardenctl's command line: `pgwardenctl [-c CONFIG] COMMAND
 * [options] [CLUSTER]`, parsed without getopt (no global state, so the unit
 * tests can parse again and again), and the help texts; see ctl.h.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_id {
	OPT_CONFIG,
	OPT_SCOPE,
	OPT_NAMESPACE,
	OPT_HELP,
	OPT_VERSION,
	OPT_FORMAT,
	OPT_WATCH,
	OPT_INTERVAL,
	OPT_SET,
	OPT_PG,
	OPT_FORCE,
	OPT_WAIT,
	OPT_LEADER,
	OPT_CANDIDATE,
	OPT_SCHEDULED,
	OPT_PENDING,
	OPT_ROLE,
	OPT_APPLY,
	OPT_REPLACE,
	OPT_VERIFY,
};

#define M(c)   (1u << (c))
#define GLOBAL 0xffffffffu
#define VIEWS  (M(PGW_CTL_LIST) | M(PGW_CTL_TOPOLOGY))

struct opt {
	const char *lname;
	char sname;
	bool has_arg;
	enum opt_id id;
	unsigned cmds;
};

static const struct opt opts[] = {
    {"config", 'c', true, OPT_CONFIG, GLOBAL},
    {"scope", 0, true, OPT_SCOPE, GLOBAL},
    {"namespace", 0, true, OPT_NAMESPACE, GLOBAL},
    {"help", 'h', false, OPT_HELP, GLOBAL},
    {"version", 0, false, OPT_VERSION, M(PGW_CTL_NONE)},
    {"format", 'f', true, OPT_FORMAT, VIEWS | M(PGW_CTL_HISTORY) | M(PGW_CTL_SHOW_CONFIG)},
    {NULL, 'W', false, OPT_WATCH, VIEWS},
    {"watch", 'w', true, OPT_INTERVAL, VIEWS},
    {"set", 's', true, OPT_SET, M(PGW_CTL_EDIT_CONFIG)},
    {"pg", 'p', true, OPT_PG, M(PGW_CTL_EDIT_CONFIG)},
    {"force", 0, false, OPT_FORCE,
     M(PGW_CTL_EDIT_CONFIG) | M(PGW_CTL_SWITCHOVER) | M(PGW_CTL_FAILOVER) | M(PGW_CTL_RESTART) |
         M(PGW_CTL_RELOAD) | M(PGW_CTL_REINIT) | M(PGW_CTL_UNFENCE)},
    {"wait", 0, false, OPT_WAIT, M(PGW_CTL_PAUSE) | M(PGW_CTL_RESUME)},
    {"leader", 0, true, OPT_LEADER, M(PGW_CTL_SWITCHOVER)},
    {"primary", 0, true, OPT_LEADER, M(PGW_CTL_SWITCHOVER)},
    {"master", 0, true, OPT_LEADER, M(PGW_CTL_SWITCHOVER)},
    {"candidate", 0, true, OPT_CANDIDATE, M(PGW_CTL_SWITCHOVER) | M(PGW_CTL_FAILOVER)},
    {"scheduled", 0, true, OPT_SCHEDULED, M(PGW_CTL_SWITCHOVER) | M(PGW_CTL_RESTART)},
    {"pending", 0, false, OPT_PENDING, M(PGW_CTL_RESTART)},
    {"role", 0, true, OPT_ROLE, M(PGW_CTL_RESTART)},
    {"apply", 0, true, OPT_APPLY, M(PGW_CTL_EDIT_CONFIG)},
    {"verify", 0, false, OPT_VERIFY, M(PGW_CTL_FENCE_LOG)},
    {"replace", 0, true, OPT_REPLACE, M(PGW_CTL_EDIT_CONFIG)},
};

static const char *const cmd_names[] = {
    [PGW_CTL_NONE] = "",
    [PGW_CTL_LIST] = "list",
    [PGW_CTL_TOPOLOGY] = "topology",
    [PGW_CTL_HISTORY] = "history",
    [PGW_CTL_SHOW_CONFIG] = "show-config",
    [PGW_CTL_EDIT_CONFIG] = "edit-config",
    [PGW_CTL_PAUSE] = "pause",
    [PGW_CTL_RESUME] = "resume",
    [PGW_CTL_SWITCHOVER] = "switchover",
    [PGW_CTL_FAILOVER] = "failover",
    [PGW_CTL_VERSION] = "version",
    [PGW_CTL_RESTART] = "restart",
    [PGW_CTL_RELOAD] = "reload",
    [PGW_CTL_REINIT] = "reinit",
    [PGW_CTL_FENCE_LOG] = "fence-log",
    [PGW_CTL_UNFENCE] = "unfence",
};

#define NCMDS (sizeof(cmd_names) / sizeof(cmd_names[0]))

static const char *const helps[NCMDS] = {
    [PGW_CTL_NONE] =
        "usage: pgwardenctl [-c CONFIG] [--scope NAME] [--namespace NS] COMMAND [options]\n"
        "\n"
        "Operator CLI for a pgwarden (Patroni-compatible) PostgreSQL cluster.  It reads\n"
        "the daemon's configuration file (default " PGW_CTL_DEFAULT_CONFIG ",\n"
        "or $PGWARDENCTL_CONFIG) for etcd3.hosts, namespace and scope.\n"
        "\n"
        "Commands:\n"
        "  list          the members, their role, state, timeline and lag\n"
        "  topology      the same, replicas indented under the leader\n"
        "  history       the timeline history\n"
        "  show-config   the dynamic configuration (the config key)\n"
        "  edit-config   change the dynamic configuration (-s KEY=VALUE, -p PARAM=VALUE)\n"
        "  pause         maintenance mode on: no automatic failover\n"
        "  resume        maintenance mode off\n"
        "  switchover    hand the leader role to a healthy replica\n"
        "  failover      make a replica the leader (also without a leader)\n"
        "  version       print the version\n"
        "  restart       restart PostgreSQL on members (through their REST API)\n"
        "  reinit        re-clone replicas from the leader (through their REST API)\n"
        "  reload        re-read the members' configuration files (through their REST API)\n"
        "  fence-log     this node's fencing audit log (--verify checks its hash chain)\n"
        "  unfence       power a fenced member back on (through the REST API, audited)\n"
        "\n"
        "`pgwardenctl COMMAND --help` describes a command.  Exit status: 0 success,\n"
        "1 the operation failed or was refused, 2 usage error.\n",
    [PGW_CTL_LIST] = "usage: pgwardenctl list [CLUSTER] [-f table|json|yaml] [-W] [-w SECONDS]\n"
                     "  -f, --format FMT     table (default), json or yaml\n"
                     "  -W                   refresh every 2 s until interrupted\n"
                     "  -w, --watch SECONDS  refresh every SECONDS until interrupted\n",
    [PGW_CTL_TOPOLOGY] =
        "usage: pgwardenctl topology [CLUSTER] [-f table|json|yaml] [-W] [-w SECONDS]\n"
        "  the leader first, its replicas under it with a \"+ \" prefix\n",
    [PGW_CTL_HISTORY] = "usage: pgwardenctl history [CLUSTER] [-f table|json|yaml]\n"
                        "  the history key: TL, LSN, Reason, Timestamp, New Leader\n",
    [PGW_CTL_SHOW_CONFIG] = "usage: pgwardenctl show-config [CLUSTER] [-f yaml|json]\n"
                            "  the config key as YAML (default) or JSON\n",
    [PGW_CTL_EDIT_CONFIG] =
        "usage: pgwardenctl edit-config [CLUSTER] [-s KEY=VALUE]... [-p PARAM=VALUE]...\n"
        "                               [--apply FILE | --replace FILE] [--force]\n"
        "  -s, --set KEY=VALUE   set a dotted key, e.g. loop_wait=5,\n"
        "                        postgresql.use_slots=false (null removes the key)\n"
        "  -p, --pg PARAM=VALUE  set postgresql.parameters.PARAM\n"
        "  --apply FILE          merge a YAML (or JSON) file into the configuration\n"
        "                        (a key set to null is removed); - reads stdin\n"
        "  --replace FILE        replace the whole configuration with the file's\n"
        "  --force               apply without asking\n"
        "  With none of these and a terminal, $EDITOR (default vi) edits the YAML.\n"
        "  Values: true/false are booleans, integers are numbers, the rest strings.\n"
        "  ttl, loop_wait and retry_timeout must stay positive integers with\n"
        "  loop_wait + 2 * retry_timeout <= ttl.\n",
    [PGW_CTL_PAUSE] = "usage: pgwardenctl pause [CLUSTER] [--wait]\n"
                      "  set \"pause\": true in the config key (no automatic failover)\n"
                      "  --wait  wait until every member reports it is paused (60 s)\n",
    [PGW_CTL_RESUME] = "usage: pgwardenctl resume [CLUSTER] [--wait]\n"
                       "  remove \"pause\" from the config key\n"
                       "  --wait  wait until no member reports it is paused (60 s)\n",
    [PGW_CTL_SWITCHOVER] =
        "usage: pgwardenctl switchover [CLUSTER] [--leader NAME] [--candidate NAME]\n"
        "                              [--scheduled ISO8601|now] [--force]\n"
        "  --leader NAME      the current leader (checked; asked for when missing)\n"
        "  --candidate NAME   the new leader (empty: any healthy replica)\n"
        "  --scheduled TIME   e.g. 2026-11-23T12:00:00+01:00, or now (default)\n"
        "  --force            do not ask (required when stdin is not a terminal)\n",
    [PGW_CTL_FAILOVER] = "usage: pgwardenctl failover [CLUSTER] --candidate NAME [--force]\n"
                         "  make NAME the leader; works also when there is no leader\n"
                         "  --force  do not ask (required when stdin is not a terminal)\n",
    [PGW_CTL_VERSION] = "usage: pgwardenctl version\n",
    [PGW_CTL_RESTART] =
        "usage: pgwardenctl restart CLUSTER [MEMBER...] [--pending] [--role R]\n"
        "                           [--scheduled ISO8601|now] [--force]\n"
        "  restart PostgreSQL on the members named (all when none), one after the other\n"
        "  --pending   only members whose configuration waits for a restart\n"
        "  --role R    only members in role R: primary, replica or any (default)\n"
        "  --scheduled TIME  at that time instead of now (each member keeps one\n"
        "              scheduled restart; DELETE /restart on the member cancels it)\n"
        "  --force     do not ask (required when stdin is not a terminal)\n",
    [PGW_CTL_RELOAD] = "usage: pgwardenctl reload CLUSTER [MEMBER...] [--force]\n"
                       "  make the members re-read their configuration files (all when none\n"
                       "  named); a file with an error is refused and the running one stays\n"
                       "  --force  do not ask (required when stdin is not a terminal)\n",
    [PGW_CTL_FENCE_LOG] =
        "usage: pgwardenctl fence-log [--verify]\n"
        "  print fencing.audit_log (one line per record: seq, time, actor, action, target,\n"
        "  result, reason); --verify checks the SHA-256 chain, also across rotated files,\n"
        "  and names the first bad record (exit status 1)\n",
    [PGW_CTL_UNFENCE] = "usage: pgwardenctl unfence CLUSTER MEMBER [--force]\n"
                        "  power MEMBER (the fenced last leader) back on through its BMC; a\n"
                        "  member's REST API does it and writes it to its audit log\n"
                        "  --force  do not ask (required when stdin is not a terminal)\n",
    [PGW_CTL_REINIT] = "usage: pgwardenctl reinit CLUSTER MEMBER... [--force]\n"
                       "  throw away the members' data and clone them from the leader again\n"
                       "  (refused on the leader)\n"
                       "  --force  do not ask (required when stdin is not a terminal)\n",
};

const char *pgw_ctl_help(enum pgw_ctl_cmd cmd)
{
	return (size_t)cmd < NCMDS && helps[cmd] ? helps[cmd] : helps[PGW_CTL_NONE];
}

const char *pgw_ctl_cmd_name(enum pgw_ctl_cmd cmd)
{
	return (size_t)cmd < NCMDS ? cmd_names[cmd] : "?";
}

static int usage_err(char *err, size_t errlen, const char *fmt, const char *what)
{
	snprintf(err, errlen, fmt, what);
	return PGW_CTL_USAGE;
}

static const struct opt *find_opt(const char *lname, size_t llen, char sname)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (lname && opts[i].lname && strlen(opts[i].lname) == llen &&
		    strncmp(opts[i].lname, lname, llen) == 0)
			return &opts[i];
		if (!lname && sname && opts[i].sname == sname)
			return &opts[i];
	}
	return NULL;
}

static int set_format(struct pgw_ctl_args *a, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "table") == 0 || strcmp(v, "pretty") == 0)
		a->fmt = PGW_FMT_TABLE;
	else if (strcmp(v, "json") == 0)
		a->fmt = PGW_FMT_JSON;
	else if (strcmp(v, "yaml") == 0)
		a->fmt = PGW_FMT_YAML;
	else
		return usage_err(err, errlen, "--format: expected table, json or yaml, got \"%s\"",
		                 v);
	return 0;
}

static int set_interval(struct pgw_ctl_args *a, const char *v, char *err, size_t errlen)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d > 0 && d <= 86400))
		return usage_err(err, errlen, "--watch: expected seconds (> 0), got \"%s\"", v);
	a->interval = d;
	a->watch = true;
	return 0;
}

static int add_set(struct pgw_ctl_args *a, const char *v, bool pg, char *err, size_t errlen)
{
	int n;

	if (a->nsets >= PGW_CTL_MAX_SETS)
		return usage_err(err, errlen, "%s: too many -s/-p options", v);
	if (!strchr(v, '=') || v[0] == '=')
		return usage_err(err, errlen, "%s: expected KEY=VALUE", v);
	if (!pg) {
		a->sets[a->nsets++] = v;
		return 0;
	}
	n = snprintf(a->pg_buf[a->nsets], sizeof(a->pg_buf[0]), "postgresql.parameters.%s", v);
	if (n < 0 || (size_t)n >= sizeof(a->pg_buf[0]))
		return usage_err(err, errlen, "%s: too long", v);
	a->sets[a->nsets] = a->pg_buf[a->nsets];
	a->nsets++;
	return 0;
}

static int set_scheduled(struct pgw_ctl_args *a, const char *v, char *err, size_t errlen)
{
	double t;

	if (strcmp(v, "now") != 0 && !pgw_parse_iso8601(v, &t))
		return usage_err(err, errlen,
		                 "--scheduled: expected now or an ISO 8601 time with a zone "
		                 "(2026-11-23T12:00:00+01:00), got \"%s\"",
		                 v);
	a->scheduled = strcmp(v, "now") == 0 ? NULL : v;
	return 0;
}

static int apply_opt(struct pgw_ctl_args *a, enum opt_id id, const char *v, char *err,
                     size_t errlen)
{
	switch (id) {
	case OPT_CONFIG:
		a->config = v;
		return 0;
	case OPT_SCOPE:
		a->scope = v;
		return 0;
	case OPT_NAMESPACE:
		a->namespace = v;
		return 0;
	case OPT_HELP:
		a->help = true;
		return 0;
	case OPT_VERSION:
		a->cmd = PGW_CTL_VERSION;
		return 0;
	case OPT_FORMAT:
		return set_format(a, v, err, errlen);
	case OPT_WATCH:
		a->watch = true;
		return 0;
	case OPT_INTERVAL:
		return set_interval(a, v, err, errlen);
	case OPT_SET:
	case OPT_PG:
		return add_set(a, v, id == OPT_PG, err, errlen);
	case OPT_FORCE:
		a->force = true;
		return 0;
	case OPT_WAIT:
		a->wait = true;
		return 0;
	case OPT_LEADER:
		a->leader = v;
		return 0;
	case OPT_CANDIDATE:
		a->candidate = v;
		return 0;
	case OPT_SCHEDULED:
		return set_scheduled(a, v, err, errlen);
	case OPT_PENDING:
		a->pending = true;
		return 0;
	case OPT_VERIFY:
		a->verify = true;
		return 0;
	case OPT_APPLY:
	case OPT_REPLACE:
		if (a->apply_file)
			return usage_err(err, errlen, "--%s: give one --apply or --replace file",
			                 id == OPT_APPLY ? "apply" : "replace");
		a->apply_file = v;
		a->replace = id == OPT_REPLACE;
		return 0;
	case OPT_ROLE:
		if (strcmp(v, "primary") && strcmp(v, "master") && strcmp(v, "replica") &&
		    strcmp(v, "any"))
			return usage_err(
			    err, errlen,
			    "--role: expected primary, master, replica or any, got \"%s\"", v);
		a->role = strcmp(v, "any") ? v : NULL;
		return 0;
	}
	return PGW_CTL_USAGE;
}

static bool takes_members(enum pgw_ctl_cmd c)
{
	return c == PGW_CTL_RESTART || c == PGW_CTL_RELOAD || c == PGW_CTL_REINIT ||
	       c == PGW_CTL_UNFENCE;
}

/* One option at argv[*i]; may consume the next argument as its value. */
static int parse_opt(int argc, char *const *argv, int *i, struct pgw_ctl_args *a, char *err,
                     size_t errlen)
{
	const char *arg = argv[*i], *val = NULL;
	const struct opt *o;

	if (arg[1] == '-') {
		const char *eq = strchr(arg + 2, '=');
		size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);

		o = find_opt(arg + 2, len, 0);
		val = eq ? eq + 1 : NULL;
		if (o && !o->has_arg && val)
			return usage_err(err, errlen, "option %s takes no value", arg);
	} else {
		o = find_opt(NULL, 0, arg[1]);
		if (o && arg[2]) {
			if (!o->has_arg)
				return usage_err(err, errlen, "unknown option %s", arg);
			val = arg + 2;
		}
	}
	if (!o) {
		return usage_err(err, errlen, "unknown option %s (see --help)", arg);
	}
	if (!(o->cmds & M(a->cmd))) {
		snprintf(err, errlen, "option %s is not valid %s%s", arg,
		         a->cmd == PGW_CTL_NONE ? "before the command" : "for ",
		         pgw_ctl_cmd_name(a->cmd));
		return PGW_CTL_USAGE;
	}
	if (o->has_arg && !val) {
		if (*i + 1 >= argc)
			return usage_err(err, errlen, "option %s needs a value", arg);
		val = argv[++*i];
	}
	return apply_opt(a, o->id, val, err, errlen);
}

static int parse_positional(struct pgw_ctl_args *a, const char *arg, char *err, size_t errlen)
{
	if (a->cmd == PGW_CTL_NONE) {
		for (size_t c = 1; c < NCMDS; c++)
			if (strcmp(arg, cmd_names[c]) == 0) {
				a->cmd = (enum pgw_ctl_cmd)c;
				return 0;
			}
		return usage_err(err, errlen, "unknown command \"%s\" (see --help)", arg);
	}
	if (a->cmd != PGW_CTL_VERSION && !a->scope) {
		a->scope = arg; /* the cluster name, as patronictl takes it */
		return 0;
	}
	if (takes_members(a->cmd) && a->nmembers < PGW_CTL_MAX_SETS) {
		a->members[a->nmembers++] = arg;
		return 0;
	}
	return usage_err(err, errlen, "unexpected argument \"%s\"", arg);
}

int pgw_ctl_parse_args(int argc, char *const *argv, struct pgw_ctl_args *a, char *err,
                       size_t errlen)
{
	bool dashdash = false;

	memset(a, 0, sizeof(*a));
	a->interval = 2;
	err[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		int rc;

		if (!dashdash && strcmp(arg, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (!dashdash && arg[0] == '-' && arg[1])
			rc = parse_opt(argc, argv, &i, a, err, errlen);
		else
			rc = parse_positional(a, arg, err, errlen);
		if (rc)
			return rc;
	}
	if (a->cmd == PGW_CTL_NONE && !a->help)
		return usage_err(err, errlen, "%s", "no command given (see --help)");
	return 0;
}

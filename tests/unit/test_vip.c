/*
 * test_vip.c - the virtual IP: address and interface parsing (daemon/vip.c), the vip:
 * section of the configuration with its errors (daemon/config.c), the core's rows for
 * adding and removing the address (core/step.c: the address only with the leader key,
 * PostgreSQL as primary and now < D - S), and the netlink address dump on lo.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "step.h"
#include "vip.h"

/* --- address and interface --- */

static void test_parse_address(void **state)
{
	struct pgw_vip_addr a;
	char why[128], buf[64];

	(void)state;
	assert_true(pgw_vip_parse_address("10.0.0.100/24", &a, why, sizeof(why)));
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.prefix, 24);
	assert_memory_equal(a.addr, ((unsigned char[]){10, 0, 0, 100}), 4);
	pgw_vip_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.100/24");
	assert_true(pgw_vip_parse_address("192.168.1.5/32", &a, why, sizeof(why)));
	assert_int_equal(a.prefix, 32);
	assert_true(pgw_vip_parse_address("172.16.0.1/1", &a, why, sizeof(why)));

	static const char *const bad[][2] = {
	    {"10.0.0.100", "prefix length is required"},
	    {"10.0.0.100/", "prefix length 1..32"},
	    {"10.0.0.100/0", "not in 1..32"},
	    {"10.0.0.100/33", "not in 1..32"},
	    {"10.0.0.100/024", "prefix length 1..32"},
	    {"10.0.0.100/2a", "prefix length 1..32"},
	    {"10.0.0.100/-1", "prefix length 1..32"},
	    {"10.0.0/24", "not an IPv4 address"},
	    {"10.0.0.256/24", "not an IPv4 address"},
	    {"host/24", "not an IPv4 address"},
	    {"/24", "expected an IPv4 address"},
	    {"fd00::1/64", "IPv6"},
	    {"127.0.0.2/8", "not a unicast address"},
	    {"0.0.0.0/8", "not a unicast address"},
	    {"224.0.0.1/24", "not a unicast address"},
	    {"255.255.255.255/32", "not a unicast address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_false(pgw_vip_parse_address(bad[i][0], &a, why, sizeof(why)));
		if (!strstr(why, bad[i][1]))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i][0], why, bad[i][1]);
		assert_int_equal(a.family, 0);
	}
}

static void test_ifname(void **state)
{
	(void)state;
	assert_true(pgw_vip_ifname_valid("eth0"));
	assert_true(pgw_vip_ifname_valid("bond0.100"));
	assert_true(pgw_vip_ifname_valid("enp0s31f6"));
	assert_true(pgw_vip_ifname_valid("123456789012345"));
	assert_false(pgw_vip_ifname_valid(""));
	assert_false(pgw_vip_ifname_valid("1234567890123456"));
	assert_false(pgw_vip_ifname_valid("eth0:1")); /* an alias label, not an interface */
	assert_false(pgw_vip_ifname_valid("a/b"));
	assert_false(pgw_vip_ifname_valid("a b"));
	assert_false(pgw_vip_ifname_valid("."));
	assert_false(pgw_vip_ifname_valid(".."));
	assert_false(pgw_vip_ifname_valid("eth\t0"));
}

/* --- configuration --- */

#define BASE "scope: s\nname: n\npostgresql:\n  data_dir: /d\n"

static struct pgw_config *parse(const char *text, char *err, size_t len)
{
	return pgw_config_parse("t.yml", text, strlen(text), err, len);
}

static void test_config(void **state)
{
	char err[512] = "";
	struct pgw_config *c;

	(void)state;
	c = parse(BASE, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->vip.address.family, 0); /* no vip: off */
	assert_null(c->vip.interface);
	pgw_config_free(c);

	c = parse(BASE "vip:\n  address: 10.1.2.3/24\n  interface: eth1\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->vip.address.family, AF_INET);
	assert_int_equal(c->vip.address.prefix, 24);
	assert_string_equal(c->vip.interface, "eth1");
	assert_int_equal(c->vip.arp_notify, PGW_VIP_ARP_DEFAULT);
	pgw_config_free(c);

	static const struct {
		const char *arp;
		int want;
	} arps[] = {{"0", 0},     {"1", 1},
	            {"20", 20},   {"true", PGW_VIP_ARP_DEFAULT},
	            {"false", 0}, {"yes", PGW_VIP_ARP_DEFAULT}};
	for (size_t i = 0; i < sizeof(arps) / sizeof(arps[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text),
		         BASE "vip:\n  address: 10.1.2.3/24\n  interface: eth1\n  arp_notify: %s\n",
		         arps[i].arp);
		c = parse(text, err, sizeof(err));
		assert_non_null(c);
		assert_int_equal(c->vip.arp_notify, arps[i].want);
		pgw_config_free(c);
	}
}

static void test_config_errors(void **state)
{
	static const char *const cases[][2] = {
	    {BASE "vip:\n  address: 10.1.2.3\n  interface: eth1\n",
	     "t.yml:6: vip.address: expected an IPv4 address with a prefix length such as "
	     "10.0.0.100/24 (a prefix length is required (e.g. 10.0.0.100/24)), got \"10.1.2.3\""},
	    {BASE "vip:\n  interface: eth1\n  address: 10.1.2.3/40\n",
	     "t.yml:7: vip.address: expected an IPv4 address with a prefix length such as "
	     "10.0.0.100/24 (prefix length 40 is not in 1..32), got \"10.1.2.3/40\""},
	    {BASE "vip:\n  address: [10.1.2.3/24]\n  interface: eth1\n",
	     "t.yml:6: vip.address: expected an IPv4 address with a prefix length, got a list"},
	    {BASE "vip:\n  address: 10.1.2.3/24\n  interface: eth1:0\n",
	     "t.yml:7: vip.interface: expected an interface name (1 to 15 characters, no '/', "
	     "':' or blanks), got \"eth1:0\""},
	    {BASE "vip:\n  address: 10.1.2.3/24\n  interface: eth1\n  arp_notify: 21\n",
	     "t.yml:8: vip.arp_notify: expected a number of gratuitous ARPs 0..20, or a boolean, "
	     "got \"21\""},
	    {BASE "vip:\n  address: 10.1.2.3/24\n  interface: eth1\n  arp_notify: -1\n",
	     "t.yml:8: vip.arp_notify: expected a number of gratuitous ARPs 0..20, or a boolean, "
	     "got \"-1\""},
	    {BASE "vip:\n  address: 10.1.2.3/24\n",
	     "t.yml: vip.interface: required with vip.address (vip: the address and the "
	     "interface it goes on)"},
	    {BASE "vip:\n  interface: eth1\n",
	     "t.yml: vip.address: required with vip.interface (vip: the address and the "
	     "interface it goes on)"},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_null(parse(cases[i][0], err, sizeof(err)));
		assert_string_equal(err, cases[i][1]);
	}
}

/* --- the core's rows --- */

struct fx {
	struct pgw_node_state s;
	struct pgw_lease l;
	struct pgw_cluster c;
	struct pgw_pg_state pg;
	struct pgw_obs o;
	struct pgw_action a;
};

#define S_MS 5000

/* node1 holds the key with lease 7 (D = 10 s + 30 s), PostgreSQL primary, now 11 s. */
static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	pgw_state_init(&f->s);
	pgw_lease_renewed(&f->l, 7, 10000, 30);
	f->s.was_primary = true;
	f->c.has_leader = true;
	snprintf(f->c.leader, sizeof(f->c.leader), "node1");
	f->c.leader_lease = 7;
	f->o.self = "node1";
	f->o.etcd_ok = true;
	f->o.cluster = &f->c;
	f->o.pg = &f->pg;
	f->o.lease = f->l;
	f->o.now_ms = 11000;
	f->a.kind = PGW_ACT_LEADER_DUTIES;
}

static const char *drop(struct fx *f, int64_t now, bool with_obs)
{
	return pgw_step_vip_drop(&f->s, &f->l, now, S_MS, with_obs ? &f->o : NULL,
	                         with_obs ? &f->a : NULL);
}

static void test_core_add(void **state)
{
	struct fx f;

	(void)state;
	fx_init(&f);
	/* the leader primary adds it after these actions, nothing else */
	assert_true(pgw_step_vip_add(&f.s, PGW_ACT_LEADER_DUTIES, true, &f.l, 11000, S_MS));
	assert_true(pgw_step_vip_add(&f.s, PGW_ACT_PROMOTE, true, &f.l, 11000, S_MS));
	assert_true(pgw_step_vip_add(&f.s, PGW_ACT_ACQUIRE, true, &f.l, 11000, S_MS));
	assert_true(pgw_step_vip_add(&f.s, PGW_ACT_BOOTSTRAP, true, &f.l, 11000, S_MS));
	for (int k = 0; k < PGW_ACT_COUNT; k++)
		if (k != PGW_ACT_LEADER_DUTIES && k != PGW_ACT_PROMOTE && k != PGW_ACT_ACQUIRE &&
		    k != PGW_ACT_BOOTSTRAP)
			assert_false(pgw_step_vip_add(&f.s, (enum pgw_action_kind)k, true, &f.l,
			                              11000, S_MS));
	/* without the key (an ACQUIRE that lost the race), not primary, past D - S, no lease */
	assert_false(pgw_step_vip_add(&f.s, PGW_ACT_ACQUIRE, false, &f.l, 11000, S_MS));
	assert_true(pgw_step_vip_add(&f.s, PGW_ACT_LEADER_DUTIES, true, &f.l, 34999, S_MS));
	assert_false(pgw_step_vip_add(&f.s, PGW_ACT_LEADER_DUTIES, true, &f.l, 35000, S_MS));
	f.s.was_primary = false;
	assert_false(pgw_step_vip_add(&f.s, PGW_ACT_PROMOTE, true, &f.l, 11000, S_MS));
	f.s.was_primary = true;
	pgw_lease_lost(&f.l);
	assert_false(pgw_step_vip_add(&f.s, PGW_ACT_LEADER_DUTIES, true, &f.l, 11000, S_MS));
	/* held already: nothing to add */
	fx_init(&f);
	pgw_step_vip_added(&f.s, 7);
	assert_false(pgw_step_vip_add(&f.s, PGW_ACT_LEADER_DUTIES, true, &f.l, 11000, S_MS));
}

static void test_core_drop(void **state)
{
	struct fx f;

	(void)state;
	fx_init(&f);
	assert_null(drop(&f, 11000, true)); /* not held */
	pgw_step_vip_added(&f.s, 7);
	assert_null(drop(&f, 11000, true));
	assert_null(drop(&f, 11000, false));
	/* rule 2: at D - S exactly it goes, with or without an observation */
	assert_null(drop(&f, 34999, false));
	assert_string_equal(drop(&f, 35000, false), "the lease is past D - S (rule 2)");
	assert_non_null(drop(&f, 35000, true));
	/* the watchdog cap lowers D: the address follows */
	pgw_lease_cap_to_watchdog(&f.l, 20000, S_MS, PGW_WD_STOP_LEAD_MS);
	assert_non_null(drop(&f, 24000, false));
	fx_init(&f);
	pgw_step_vip_added(&f.s, 7);
	/* a lapsed lease (rule 7), a lost one, a new one granted after the loss */
	pgw_lease_lapse(&f.l);
	assert_string_equal(drop(&f, 11000, false), "the lease it was added under is lost");
	pgw_lease_renewed(&f.l, 8, 11000, 30);
	assert_string_equal(drop(&f, 11000, false), "the lease it was added under is lost");
	/* PostgreSQL no longer primary (crashed, stopped) */
	fx_init(&f);
	pgw_step_vip_added(&f.s, 7);
	f.s.was_primary = false;
	assert_string_equal(drop(&f, 11000, false), "PostgreSQL does not run as primary");
	/* every action that gives up writing: before it is carried out */
	for (int k = 0; k < PGW_ACT_COUNT; k++) {
		fx_init(&f);
		pgw_step_vip_added(&f.s, 7);
		f.a.kind = (enum pgw_action_kind)k;
		if (pgw_action_gives_up(f.a.kind))
			assert_string_equal(drop(&f, 11000, true), "giving up writing");
		else
			assert_null(drop(&f, 11000, true));
	}
	/* shutdown; the key is another node's, or gone */
	fx_init(&f);
	pgw_step_vip_added(&f.s, 7);
	f.o.shutdown_requested = true;
	assert_string_equal(drop(&f, 11000, true), "shutting down");
	fx_init(&f);
	pgw_step_vip_added(&f.s, 7);
	snprintf(f.c.leader, sizeof(f.c.leader), "node2");
	assert_string_equal(drop(&f, 11000, true), "the leader key is not this node's");
	f.c.has_leader = false;
	assert_string_equal(drop(&f, 11000, true), "the leader key is not this node's");
	/* etcd unreachable, lease valid: it stays until D - S, like the writes */
	f.o.etcd_ok = false;
	f.a.kind = PGW_ACT_NONE;
	assert_null(drop(&f, 11000, true));
	assert_non_null(drop(&f, 35000, true));
}

static void test_core_leftover(void **state)
{
	struct fx f;

	(void)state;
	/* found on the interface without having added it (restart after a crash): it goes
	 * whatever else holds, even as the leader primary */
	fx_init(&f);
	pgw_step_vip_observed(&f.s, true);
	assert_true(f.s.vip_held);
	assert_non_null(strstr(drop(&f, 11000, true), "leftover"));
	pgw_step_vip_dropped(&f.s);
	assert_false(f.s.vip_held);
	assert_null(drop(&f, 11000, true));
	/* added, then seen gone (an operator removed it): added again when due */
	pgw_step_vip_added(&f.s, 7);
	pgw_step_vip_observed(&f.s, true);
	assert_null(drop(&f, 11000, true));
	pgw_step_vip_observed(&f.s, false);
	assert_int_equal(f.s.vip_lease, 0);
	assert_true(pgw_step_vip_add(&f.s, PGW_ACT_LEADER_DUTIES, true, &f.l, 11000, S_MS));
	/* a fresh state holds nothing */
	pgw_state_init(&f.s);
	assert_false(f.s.vip_held);
}

/* --- netlink: the address dump needs no privilege --- */

static void test_netlink_present(void **state)
{
	struct pgw_vip_addr lo = {.family = AF_INET, .addr = {127, 0, 0, 1}, .prefix = 8};
	struct pgw_vip_addr other = {.family = AF_INET, .addr = {127, 0, 0, 93}, .prefix = 8};

	(void)state;
	assert_int_equal(pgw_vip_present("lo", &lo), 1);
	assert_int_equal(pgw_vip_present("lo", &other), 0);
	errno = 0;
	assert_int_equal(pgw_vip_present("pgwnosuchif0", &lo), -1);
	assert_int_equal(errno, ENODEV);
	errno = 0;
	assert_int_equal(pgw_vip_add("pgwnosuchif0", &lo), -1);
	assert_int_equal(errno, ENODEV);
	if (geteuid() != 0) {
		/* without CAP_NET_ADMIN the kernel refuses, and says so */
		assert_int_equal(pgw_vip_add("lo", &other), -1);
		assert_int_equal(errno, EPERM);
		assert_int_equal(pgw_vip_del("lo", &other), -1);
		assert_int_equal(errno, EPERM);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_address), cmocka_unit_test(test_ifname),
	    cmocka_unit_test(test_config),        cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_core_add),      cmocka_unit_test(test_core_drop),
	    cmocka_unit_test(test_core_leftover), cmocka_unit_test(test_netlink_present),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

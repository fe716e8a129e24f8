# pgwarden - top-level Makefile.
#
#   make            build build/pgwarden (optimised)
#   make test       install what is missing, build with ASan+UBSan, run unit and integration tests
#   make unit       unit tests only (no root needed)
#   make demo       a three-node cluster on loopback with a failover to watch
#   make soak       the "no false fence" soak, MINUTES=20 SEED=S (tests/faults/README.md)
#   make bench      REST req/s and latency, commit tps and latency with synchronous_mode off
#                   and on, failover as the operator sees it (bench/RESULTS.md), pgwarden
#                   against Patroni (figures, not a test; about 2.5 hours)
#   make bench-failover BENCH_ARGS="--timings tight --runs 1"   the failover bench alone
#   make check-format / make cppcheck
#   make deb / make rpm   Debian and RPM packages in build/pkg/ (packaging/; version: VERSION)
#   make package-test     units, man pages, lintian/rpmlint, rpm --root, the appliance VM
#
# Objects go to build/<variant>/, so the normal and the sanitizer builds coexist and
# parallel make (-j) is safe.

VERSION := 0.1.0

PKGS    := libpq libcurl json-c yaml-0.1 libmicrohttpd gnutls libsystemd
# Native IPMI fencing (fencing/fence.c); without it fencing falls back to ipmitool.
FREEIPMI := $(shell pkg-config --exists libfreeipmi 2>/dev/null && echo libfreeipmi)
PKGS    += $(FREEIPMI)
CC      ?= gcc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lresolv
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

VARIANT ?= release
ifeq ($(VARIANT),asan)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow \
         -fno-sanitize-recover=undefined,float-cast-overflow
else ifeq ($(VARIANT),fuzz)
  # libFuzzer (clang): objects instrumented for coverage, targets linked with the fuzzer
  CC  := clang
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
         -fno-sanitize-recover=undefined -Wno-error
else
  OPT := -O2 -g
endif
B := build/$(VARIANT)

# Layers, each seeing only those below it (the include path is the rule):
#   core/      the pure decision core: no I/O, includes only core/
#   daemon/ watchdog/ fencing/   the shell that does the I/O: core/ and each other
#   ctl/       the operator CLI: everything above
CFLAGS_BASE := $(CSTD) $(WARN) $(OPT) -pthread -DPGW_VERSION='"$(VERSION)"' \
	$(if $(FREEIPMI),-DPGW_HAVE_FREEIPMI) $(PKG_CFLAGS) $(CFLAGS)
INC_CORE   := -Icore
INC_SHELL  := $(INC_CORE) -Idaemon -Iwatchdog -Ifencing
INC_ALL    := $(INC_SHELL) -Ictl
CFLAGS_ALL := $(CFLAGS_BASE) $(INC_ALL)
LDFLAGS_ALL := $(OPT) -pthread $(LDFLAGS)

MAINS   := daemon/main.c ctl/pgwardenctl.c
LIB_SRC := $(wildcard core/*.c) $(filter-out $(MAINS),$(wildcard daemon/*.c)) \
	$(wildcard watchdog/*.c) $(wildcard fencing/*.c) $(filter-out $(MAINS),$(wildcard ctl/*.c))
LIB_SRC := $(filter-out watchdog/pgwarden-wdemu.c fencing/pgwarden-fence.c,$(LIB_SRC))
SRC_DIRS := core daemon watchdog fencing ctl
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: lint all deps test unit integration faults soak deps-soak demo clean check-format format cppcheck asan bench bench-failover sim sim-open fuzz fuzz-replay
all: deps-build
	@$(MAKE) --no-print-directory $(B)/pgwarden $(B)/pgwardenctl $(B)/pgwarden-fence
	@ln -sf $(VARIANT)/pgwarden build/pgwarden

# Install missing Debian packages (needs root only when something is missing).
deps-build:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh test

HDRS := $(wildcard $(SRC_DIRS:%=%/*.h))
layer_inc = $(if $(filter core/%,$1),$(INC_CORE),$(if $(filter ctl/%,$1),$(INC_ALL),$(INC_SHELL)))

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $(VARIANT) $<"
	@$(CC) $(CFLAGS_BASE) $(call layer_inc,$<) -c -o $@ $<

$(B)/libpgw.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(B)/pgwarden: $(B)/daemon/main.o $(B)/libpgw.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(B)/pgwardenctl: $(B)/ctl/pgwardenctl.o $(B)/libpgw.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libpgw.a
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) -Itests/unit $(LDFLAGS_ALL) -o $@ $< $(B)/libpgw.a $(PKG_LIBS) $(CMOCKA_LIBS)

$(B)/tests/test_decide_random: tests/fuzz/fuzz_decide.c

# The watchdog emulator for host tests (not in libpgw.a); test_watchdog runs it.
$(B)/pgwarden-wdemu: $(B)/watchdog/pgwarden-wdemu.o
	@echo "  LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^
$(B)/tests/test_watchdog: $(B)/pgwarden-wdemu

# The fencing command (power off/on/status through one BMC, audit log verify), not in
# libpgw.a's objects but linked against it; tests/integration/test_fence_devices.py runs it.
$(B)/pgwarden-fence: $(B)/fencing/pgwarden-fence.o $(B)/libpgw.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

# The deterministic multi-node simulator (tests/sim/): it links the daemon's own
# decision code.  make sim SEEDS=100000 [FROM=1]; make test replays tests/sim/seeds.
SEEDS ?= 2000
FROM  ?= 1
$(B)/sim: tests/sim/sim.c $(B)/libpgw.a
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(B)/libpgw.a $(PKG_LIBS)
sim: deps-build
	@$(MAKE) --no-print-directory build/release/sim
	@build/release/sim --seeds $(SEEDS) --from $(FROM) --quiet
# The seeds that still fail (tests/sim/open-seeds): expected to fail until fixed.
sim-open: deps-build
	@$(MAKE) --no-print-directory build/release/sim
	@for s in $$(grep -o '^[0-9][0-9]*' tests/sim/open-seeds); do build/release/sim --seed $$s | head -3; done

# Fuzz targets (tests/fuzz/fuzz_*.c, libFuzzer's entry point).  make fuzz [FUZZ_TIME=s]
# [FUZZ=target] runs each with clang's libFuzzer from its committed corpus
# (tests/fuzz/corpus/<target>/), adds what it found there (-merge) and stops on the first
# crash (kept in build/fuzz/).  make test replays every corpus with gcc, ASan and UBSan
# (tests/fuzz/replay.c), so a crash input committed to the corpus is a regression test.
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ ?= $(FUZZ_TARGETS)
FUZZ_TIME ?= 60
$(B)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(B)/libpgw.a
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< tests/fuzz/replay.c $(B)/libpgw.a $(PKG_LIBS)
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(B)/libpgw.a
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(B)/libpgw.a $(PKG_LIBS)
fuzz-replay: asan
	@$(MAKE) --no-print-directory VARIANT=asan $(FUZZ_TARGETS:%=build/asan/fuzz/replay_%)
	@for t in $(FUZZ_TARGETS); do mkdir -p tests/fuzz/corpus/$$t; \
	  build/asan/fuzz/replay_$$t tests/fuzz/corpus/$$t || exit 1; done
fuzz:
	@scripts/install-deps.sh fuzz
	@$(MAKE) --no-print-directory VARIANT=fuzz $(FUZZ:%=build/fuzz/fuzz/fuzz_%)
	@for t in $(FUZZ); do mkdir -p tests/fuzz/corpus/$$t build/fuzz/work/$$t; \
	  echo "== fuzz_$$t for $(FUZZ_TIME) s"; \
	  build/fuzz/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -max_len=8192 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/$$t- build/fuzz/work/$$t tests/fuzz/corpus/$$t 2>&1 | \
	    grep -E '^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)' ; \
	  build/fuzz/fuzz/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t build/fuzz/work/$$t >/dev/null 2>&1; \
	  ls build/fuzz/$$t-crash-* 2>/dev/null && exit 1; done; true

# The sanitizer build used by the whole test suite.
asan:
	@$(MAKE) --no-print-directory VARIANT=asan build/asan/pgwarden build/asan/pgwardenctl build/asan/pgwarden-fence $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

# The fault campaign (tests/faults/, issue 13): real machines (network namespaces, cgroups,
# BMCs, watchdog emulators), three etcd members, faults drawn from the seed, a history
# checked after each run.  make faults RUNS=N SEED=S [FAULTS_ARGS="--timing default --async"]
RUNS ?= 1
SEED ?= 1
FAULTS_ARGS ?=
faults: deps-test asan
	@PGWARDEN_BIN=$(CURDIR)/build/asan/pgwarden /usr/bin/python3 tests/faults/run.py \
		--runs $(RUNS) --seed $(SEED) $(FAULTS_ARGS)

# The "no false fence" soak (tests/faults/soak.py): one cluster, fast_takeover_after 1 s,
# load and short hiccups on the leader for MINUTES; fails on any fence or leader change.
# make soak MINUTES=20 SEED=S [SOAK_ARGS="--fast-takeover-after 2 --keep"]; no SEED: drawn.
MINUTES ?= 20
SOAK_ARGS ?=
deps-soak:
	@scripts/install-deps.sh soak
soak: deps-soak asan
	@PGWARDEN_BIN=$(CURDIR)/build/asan/pgwarden /usr/bin/python3 tests/faults/soak.py \
		--minutes $(MINUTES) $(if $(filter command line environment,$(origin SEED)),--seed $(SEED)) \
		$(SOAK_ARGS)

unit: deps-test asan
	@tests/run-unit.sh build/asan/tests

integration: deps-test asan
	@PGWARDEN_BIN=$(CURDIR)/build/asan/pgwarden tests/run-integration.sh

test: deps-test asan lint
	@tests/run-unit.sh build/asan/tests
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory VARIANT=asan build/asan/sim
	@tests/sim/run.sh build/asan/sim
	@PGWARDEN_BIN=$(CURDIR)/build/asan/pgwarden tests/run-integration.sh
	@PGWARDEN_BIN=$(CURDIR)/build/asan/pgwarden tests/run-integration.sh tests/faults/test_checker.py tests/faults/test_faults.py tests/faults/test_soak.py
	@$(MAKE) --no-print-directory package-test

# REST throughput and latency, commit cost, and failover (bench/failover-bench.py, the full
# matrix: 3 systems x 2 timings x 3 runs) against Patroni 3.0.2 in the same run (not a test).
# make bench-failover BENCH_ARGS="--systems pgwarden-fast,patroni --timings tight --runs 1"
BENCH_ARGS ?=
FAILOVER_BENCH := PGWARDEN_BIN=$(CURDIR)/build/release/pgwarden /usr/bin/python3 bench/failover-bench.py
bench: all
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build/release/pgwarden-wdemu
	@bench/rest-bench.sh $(CURDIR)/build/release/pgwarden
	@bench/sync-bench.sh $(CURDIR)/build/release/pgwarden
	@$(FAILOVER_BENCH)

bench-failover: all
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build/release/pgwarden-wdemu
	@$(FAILOVER_BENCH) $(BENCH_ARGS)

demo: all
	@scripts/install-deps.sh demo
	@scripts/demo.sh $(CURDIR)/build/release/pgwarden

lint: check-format cppcheck

FORMATTED := $(wildcard $(SRC_DIRS:%=%/*.[ch]) tests/unit/*.[ch] tests/sim/*.c)
check-format:
	@clang-format --dry-run --Werror $(FORMATTED)

format:
	clang-format -i $(FORMATTED)

cppcheck:
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
		--std=c11 $(INC_ALL) -D__GNUC__ $(SRC_DIRS) tests/sim

clean:
	rm -rf build

# Packages (packaging/): VERSION above is their version.  package-test checks them and
# boots the appliance VM (tests/packaging/, as root); vm-appliance is that VM alone.
.PHONY: deb rpm package-test vm-appliance
deb:
	@scripts/install-deps.sh package
	@packaging/build-deb.sh $(VERSION)
rpm:
	@scripts/install-deps.sh package
	@packaging/build-rpm.sh $(VERSION)
package-test: deb rpm
	@tests/packaging/run.sh $(VERSION)
vm-appliance: deb
	@tests/packaging/test_appliance.sh $(VERSION)

/*
 * test_decide_random.c - the fuzz target tests/fuzz/fuzz_decide.c built as a
 * plain program (no libFuzzer): PGW_RANDOM_ITERATIONS (default 200000) pseudo-
 * random observations, member JSON and etcd ranges from a fixed seed, each
 * checked against the decision core's safety invariants.  Prints
 * "random: N passed, M failed" and exits non-zero on any violation.  An optional
 * argument sets another seed.
 */
#define PGW_FUZZ_STANDALONE 1
#include "../fuzz/fuzz_decide.c"

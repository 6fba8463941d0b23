/*
 * Boot slots on their own: the limit, first come first served, leases
 * that run out (and a stale lease given back afterwards doing nothing),
 * waits given up on a kick, no limit, a changed limit, bad values.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/time.h"
#include "vmm/bootgate.h"
#include "testutil.h"

#define LONG_MS 600000u  /* a lease that never runs out during a test */

static struct kevd_bootgate *new_gate(unsigned slots, unsigned lease_ms)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_bootgate *g = NULL;

	ck_assert_int_eq(kevd_bootgate_new(slots, lease_ms, &g, &err), 0);
	return g;
}

static struct kevd_bootgate_stats stats(struct kevd_bootgate *g)
{
	struct kevd_bootgate_stats st;

	kevd_bootgate_stats(g, &st);
	return st;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static bool flag_set(void *arg)
{
	return atomic_load((atomic_bool *)arg);
}

/* A thread in line: records the order it was granted in. */
struct entrant {
	struct kevd_bootgate *g;
	pthread_t thread;
	atomic_bool cancel;
	int rc;
	uint64_t waited_ns;
	struct kevd_boot_lease lease;
	atomic_int *order;
	int granted_as;
};

static void *entrant_main(void *arg)
{
	struct entrant *e = arg;

	e->rc = kevd_bootgate_enter(e->g, flag_set, &e->cancel, &e->lease, &e->waited_ns);
	if (e->rc == 0)
		e->granted_as = atomic_fetch_add(e->order, 1);
	return NULL;
}

static void wait_for_waiting(struct kevd_bootgate *g, unsigned n)
{
	for (int i = 0; i < 5000 && stats(g).waiting != n; i++)
		usleep(1000);
	ck_assert_uint_eq(stats(g).waiting, n);
}

/* Starts E in line behind those already there. */
static void line_up(struct entrant *e, struct kevd_bootgate *g, atomic_int *order)
{
	unsigned before = stats(g).waiting;

	*e = (struct entrant){ .g = g, .order = order, .rc = 1 };
	ck_assert_int_eq(pthread_create(&e->thread, NULL, entrant_main, e), 0);
	wait_for_waiting(g, before + 1);
}

START_TEST(limit_and_order)
{
	struct kevd_bootgate *g = new_gate(2, LONG_MS);
	struct kevd_boot_lease a, b;
	struct entrant e[3];
	atomic_int order = 0;
	uint64_t waited = 1;

	ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &a, &waited), 0);
	ck_assert_uint_eq(waited, 0);
	ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &b, NULL), 0);
	ck_assert_uint_eq(stats(g).busy, 2);
	for (int i = 0; i < 3; i++)
		line_up(&e[i], g, &order);
	usleep(20000);
	ck_assert_int_eq(atomic_load(&order), 0);  /* nobody past the limit */

	kevd_bootgate_leave(g, &a);
	pthread_join(e[0].thread, NULL);
	ck_assert_int_eq(e[0].rc, 0);
	ck_assert_int_eq(e[0].granted_as, 0);
	ck_assert_uint_ge(e[0].waited_ns, 20000000u);
	ck_assert_uint_eq(stats(g).waiting, 2);
	ck_assert_uint_eq(stats(g).busy, 2);

	kevd_bootgate_leave(g, &b);
	kevd_bootgate_leave(g, &b);  /* twice: the second does nothing */
	pthread_join(e[1].thread, NULL);
	ck_assert_int_eq(e[1].granted_as, 1);
	ck_assert_uint_eq(stats(g).waiting, 1);
	ck_assert_uint_eq(stats(g).busy, 2);

	kevd_bootgate_leave(g, &e[0].lease);
	pthread_join(e[2].thread, NULL);
	ck_assert_int_eq(e[2].granted_as, 2);
	kevd_bootgate_leave(g, &e[1].lease);
	kevd_bootgate_leave(g, &e[2].lease);
	ck_assert_uint_eq(stats(g).busy, 0);
	ck_assert_uint_eq(stats(g).granted, 5);
	ck_assert_uint_eq(stats(g).waited, 3);
	ck_assert_uint_eq(stats(g).expired, 0);
	kevd_bootgate_free(g);
}
END_TEST

START_TEST(lease_runs_out)
{
	struct kevd_bootgate *g = new_gate(1, 50);
	struct kevd_boot_lease held;
	struct entrant e;
	atomic_int order = 0;
	uint64_t t0 = kevd_now_ns(CLOCK_MONOTONIC);

	ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &held, NULL), 0);
	line_up(&e, g, &order);
	/* Nobody gives the slot back: the lease's end lets the next one in. */
	pthread_join(e.thread, NULL);
	ck_assert_int_eq(e.rc, 0);
	ck_assert_uint_ge(kevd_now_ns(CLOCK_MONOTONIC) - t0, 50000000u);
	ck_assert_uint_eq(stats(g).expired, 1);
	ck_assert_uint_eq(stats(g).busy, 1);
	/* The first holder's lease is stale now: it frees nothing. */
	kevd_bootgate_leave(g, &held);
	ck_assert_uint_eq(stats(g).busy, 1);
	kevd_bootgate_leave(g, &e.lease);
	ck_assert_uint_eq(stats(g).busy, 0);
	kevd_bootgate_free(g);
}
END_TEST

START_TEST(cancelled_waits)
{
	struct kevd_bootgate *g = new_gate(1, LONG_MS);
	struct kevd_boot_lease held;
	struct entrant first, second;
	atomic_int order = 0;
	atomic_bool yes = true;

	/* Cancelled before it waits: no slot, no wait. */
	ck_assert_int_eq(kevd_bootgate_enter(g, flag_set, &yes, &held, NULL), -ECANCELED);
	ck_assert_uint_eq(stats(g).busy, 0);
	ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &held, NULL), 0);
	line_up(&first, g, &order);
	line_up(&second, g, &order);
	/* The first in line gives up; the one behind it moves up and gets
	 * the slot when it is given back. */
	atomic_store(&first.cancel, true);
	kevd_bootgate_kick(g, &first.cancel);
	pthread_join(first.thread, NULL);
	ck_assert_int_eq(first.rc, -ECANCELED);
	ck_assert_uint_eq(stats(g).waiting, 1);
	ck_assert_uint_eq(stats(g).cancelled, 2);
	kevd_bootgate_leave(g, &held);
	pthread_join(second.thread, NULL);
	ck_assert_int_eq(second.rc, 0);
	ck_assert_int_eq(second.granted_as, 0);
	kevd_bootgate_leave(g, &second.lease);
	ck_assert_uint_eq(stats(g).busy, 0);
	kevd_bootgate_free(g);
}
END_TEST

/* Nobody gives a slot back: the leases' ends alone move the line, in
 * order, with a first in line that gives up on the way and a limit that
 * drops below what is held. */
START_TEST(expiry_moves_the_line)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_bootgate *g = new_gate(2, 40);
	struct kevd_boot_lease a, b;
	struct entrant e[4];
	atomic_int order = 0;

	ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &a, NULL), 0);
	ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &b, NULL), 0);
	for (int i = 0; i < 4; i++)
		line_up(&e[i], g, &order);
	atomic_store(&e[0].cancel, true);
	kevd_bootgate_kick(g, &e[0].cancel);
	pthread_join(e[0].thread, NULL);
	ck_assert_int_eq(e[0].rc, -ECANCELED);
	/* One slot from now on: the three left get in one lease apart. */
	ck_assert_int_eq(kevd_bootgate_set(g, 1, 40, &err), 0);
	for (int i = 1; i < 4; i++) {
		pthread_join(e[i].thread, NULL);
		ck_assert_int_eq(e[i].rc, 0);
		ck_assert_int_eq(e[i].granted_as, i - 1);
	}
	/* Both first leases ran out before the first of the three got in
	 * (40 ms after they were granted, a little before e[3] lined up),
	 * then the first two of the three, each before the next got in. */
	ck_assert_uint_ge(e[3].waited_ns, 2 * 40000000u);
	ck_assert_uint_eq(stats(g).expired, 4);
	ck_assert_uint_eq(stats(g).busy, 1);
	ck_assert_uint_eq(stats(g).waiting, 0);
	kevd_bootgate_leave(g, &e[3].lease);
	ck_assert_uint_eq(stats(g).busy, 0);
	kevd_bootgate_free(g);
}
END_TEST

START_TEST(no_limit_and_set)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_bootgate *g = new_gate(0, LONG_MS);
	struct kevd_boot_lease l[10];
	struct entrant e;
	atomic_int order = 0;

	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(kevd_bootgate_enter(g, never, NULL, &l[i], NULL), 0);
	ck_assert_uint_eq(stats(g).busy, 10);
	ck_assert_uint_eq(stats(g).waited, 0);
	/* A limit below what is held: new ones wait until enough end. */
	ck_assert_int_eq(kevd_bootgate_set(g, 9, LONG_MS, &err), 0);
	line_up(&e, g, &order);
	kevd_bootgate_leave(g, &l[0]);
	usleep(20000);
	ck_assert_int_eq(atomic_load(&order), 0);
	/* A higher limit lets it in at once. */
	ck_assert_int_eq(kevd_bootgate_set(g, 11, LONG_MS, &err), 0);
	pthread_join(e.thread, NULL);
	ck_assert_int_eq(e.rc, 0);
	ck_assert_uint_eq(stats(g).slots, 11);
	for (int i = 1; i < 10; i++)
		kevd_bootgate_leave(g, &l[i]);
	kevd_bootgate_leave(g, &e.lease);
	ck_assert_uint_eq(stats(g).busy, 0);

	ck_assert_int_eq(kevd_bootgate_set(g, KEVD_BOOTGATE_MAX_SLOTS + 1, 30, &err), -EINVAL);
	ck_assert_int_eq(kevd_bootgate_set(g, 1, 0, &err), -EINVAL);
	ck_assert_int_eq(kevd_bootgate_set(g, 1, 3600001, &err), -EINVAL);
	ck_assert_uint_eq(stats(g).slots, 11);  /* unchanged by the failures */
	kevd_bootgate_free(g);
	g = NULL;
	ck_assert_int_eq(kevd_bootgate_new(1, 0, &g, &err), -EINVAL);
	ck_assert_ptr_null(g);
	ck_assert_msg(strstr(err.msg, "0 ms"), "%s", err.msg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bootgate");
	TCase *t = tcase_create("core");

	tcase_add_test(t, limit_and_order);
	tcase_add_test(t, lease_runs_out);
	tcase_add_test(t, cancelled_waits);
	tcase_add_test(t, expiry_moves_the_line);
	tcase_add_test(t, no_limit_and_set);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}

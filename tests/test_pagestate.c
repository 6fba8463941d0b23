/*
 * Page state table: stable entries across growth, exactly one claimant per
 * page under contention, and sleepers woken by the publish.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "pager/pagestate.h"
#include "testutil.h"

START_TEST(bad_stripes)
{
	struct kevd_pagestate *ps = NULL;
	struct kevd_error err = KEVD_ERROR_INIT;

	ck_assert_int_eq(kevd_pagestate_new(0, &ps, &err), -EINVAL);
	ck_assert_int_eq(kevd_pagestate_new(5000, &ps, &err), -EINVAL);
	ck_assert_ptr_null(ps);
	ck_assert_int_eq(kevd_pagestate_new(48, &ps, &err), 0);
	ck_assert_uint_eq(kevd_pagestate_stripes(ps), 64);
	kevd_pagestate_free(ps);
}
END_TEST

START_TEST(stable_entries)
{
	struct kevd_pagestate *ps;
	struct kevd_error err = KEVD_ERROR_INIT;
	enum { N = 100000 };
	uint32_t **w = malloc(N * sizeof(*w));

	ck_assert_int_eq(kevd_pagestate_new(_i ? 16 : 1, &ps, &err), 0);
	for (uint64_t i = 0; i < N; i++) {
		ck_assert_ptr_null(kevd_pagestate_find(ps, i * 7919));
		w[i] = kevd_pagestate_get(ps, i * 7919);
		ck_assert_ptr_nonnull(w[i]);
		ck_assert_int_eq(kevd_pagestate_read(w[i]), KEVD_PAGE_UNLOADED);
		*w[i] = (uint32_t)(i % 3 == 0 ? KEVD_PAGE_MAPPED : KEVD_PAGE_UNLOADED);
	}
	ck_assert_uint_eq(kevd_pagestate_count(ps), N);
	/* The tables grew many times over; every word stayed where it was. */
	for (uint64_t i = 0; i < N; i++) {
		ck_assert_ptr_eq(kevd_pagestate_get(ps, i * 7919), w[i]);
		ck_assert_ptr_eq(kevd_pagestate_find(ps, i * 7919), w[i]);
		ck_assert_int_eq(kevd_pagestate_read(w[i]), i % 3 == 0 ? KEVD_PAGE_MAPPED : KEVD_PAGE_UNLOADED);
	}
	ck_assert_uint_eq(kevd_pagestate_count(ps), N);
	kevd_pagestate_free(ps);
	free(w);
}
END_TEST

enum { THREADS = 8, PAGES = 512, ROUNDS = 20 };

struct race {
	struct kevd_pagestate *ps;
	pthread_barrier_t barrier;
	int wins[PAGES];          /* atomic */
	int bad_wait;             /* atomic: a waiter returned before the publish */
	int published[PAGES];     /* atomic: set before publish */
};

static void *racer(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->barrier);
	for (int g = 0; g < PAGES; g++) {
		uint32_t *w = kevd_pagestate_get(r->ps, (uint64_t)g);

		if (kevd_pagestate_claim(w)) {
			__atomic_fetch_add(&r->wins[g], 1, __ATOMIC_RELAXED);
			if (g % 64 == 0)
				usleep(200);  /* a slow loader: others must sleep, not spin past */
			__atomic_store_n(&r->published[g], 1, __ATOMIC_RELEASE);
			kevd_pagestate_publish(w, KEVD_PAGE_MAPPED);
		} else if (kevd_pagestate_wait(w) != KEVD_PAGE_MAPPED ||
			   !__atomic_load_n(&r->published[g], __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&r->bad_wait, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

START_TEST(one_winner)
{
	for (int round = 0; round < ROUNDS; round++) {
		struct race *r = calloc(1, sizeof(*r));
		struct kevd_error err = KEVD_ERROR_INIT;
		pthread_t t[THREADS];

		ck_assert_int_eq(kevd_pagestate_new(round % 2 ? 64 : 1, &r->ps, &err), 0);
		pthread_barrier_init(&r->barrier, NULL, THREADS);
		for (int i = 0; i < THREADS; i++)
			ck_assert_int_eq(pthread_create(&t[i], NULL, racer, r), 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		for (int g = 0; g < PAGES; g++)
			ck_assert_int_eq(r->wins[g], 1);
		ck_assert_int_eq(r->bad_wait, 0);
		pthread_barrier_destroy(&r->barrier);
		kevd_pagestate_free(r->ps);
		free(r);
	}
}
END_TEST

START_TEST(failed_wakes_waiters)
{
	struct kevd_pagestate *ps;
	struct kevd_error err = KEVD_ERROR_INIT;
	uint32_t *w;

	ck_assert_int_eq(kevd_pagestate_new(4, &ps, &err), 0);
	w = kevd_pagestate_get(ps, 7);
	ck_assert(kevd_pagestate_claim(w));
	ck_assert(!kevd_pagestate_claim(w));
	ck_assert_int_eq(kevd_pagestate_read(w), KEVD_PAGE_LOADING);
	kevd_pagestate_publish(w, KEVD_PAGE_FAILED);
	ck_assert_int_eq(kevd_pagestate_wait(w), KEVD_PAGE_FAILED);
	ck_assert(!kevd_pagestate_claim(w));
	kevd_pagestate_free(ps);
}
END_TEST

/* The count is read without the stripe locks while inserts go on: no
 * reading ever goes back, none passes the final total, and once the
 * inserters are joined it is exact. */
enum { COUNTERS = 4, COUNT_PAGES = 20000 };

struct counting {
	struct kevd_pagestate *ps;
	int running;              /* atomic: inserters not finished */
};

struct inserter_arg {
	struct counting *c;
	uint64_t first;
};

static void *inserter(void *arg)
{
	struct inserter_arg *a = arg;

	for (uint64_t g = 0; g < COUNT_PAGES; g++)
		if (!kevd_pagestate_get(a->c->ps, a->first + g * 13))
			break;
	__atomic_fetch_sub(&a->c->running, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(count_while_inserting)
{
	struct counting c = { .running = COUNTERS };
	struct inserter_arg args[COUNTERS];
	struct kevd_error err = KEVD_ERROR_INIT;
	pthread_t t[COUNTERS];
	uint64_t last = 0, readings = 0;
	bool went_back = false;

	ck_assert_int_eq(kevd_pagestate_new(64, &c.ps, &err), 0);
	for (int i = 0; i < COUNTERS; i++) {
		args[i] = (struct inserter_arg){ &c, (uint64_t)i * 13 * COUNT_PAGES };
		ck_assert_int_eq(pthread_create(&t[i], NULL, inserter, &args[i]), 0);
	}
	while (__atomic_load_n(&c.running, __ATOMIC_ACQUIRE) > 0) {
		uint64_t now = kevd_pagestate_count(c.ps);

		went_back |= now < last;
		last = now;
		readings++;
	}
	for (int i = 0; i < COUNTERS; i++)
		pthread_join(t[i], NULL);
	ck_assert(!went_back);
	ck_assert_uint_gt(readings, 0);
	ck_assert_uint_le(last, COUNTERS * COUNT_PAGES);
	ck_assert_uint_eq(kevd_pagestate_count(c.ps), COUNTERS * COUNT_PAGES);
	kevd_pagestate_free(c.ps);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pagestate");
	TCase *t = tcase_create("pagestate");

	tcase_set_timeout(t, 60);
	tcase_add_test(t, bad_stripes);
	tcase_add_loop_test(t, stable_entries, 0, 2);
	tcase_add_test(t, one_winner);
	tcase_add_test(t, failed_wakes_waiters);
	tcase_add_test(t, count_while_inserting);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return kevd_test_run(suite());
}

/*
 * The log's rate limit: the token bucket itself with a clock of the test's
 * own (burst, refill, the cap on refill, partial intervals, a clock that
 * stands still or goes back), then the real call sites writing to a
 * temporary file in place of stderr (each site its own: they stay apart
 * without Check's fork mode too; one site limited, another apart, errors
 * limited, info and debug never, lines below the level cost nothing, the
 * "more suppressed" count on the line that follows a suppression).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "testutil.h"

#define REFILL ((uint64_t)KEVD_LOG_REFILL_MS * 1000000u)
#define T0 (1000 * REFILL)

static unsigned passes(struct kevd_log_limit *l, uint64_t now, unsigned n, uint64_t *last_suppressed)
{
	unsigned ok = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t s = 99;

		if (kevd_log_limit_pass(l, now, &s)) {
			ok++;
			*last_suppressed = s;
		}
	}
	return ok;
}

START_TEST(burst_then_suppressed)
{
	struct kevd_log_limit l = { 0 };
	uint64_t s = 0;

	ck_assert_uint_eq(passes(&l, T0, 100, &s), KEVD_LOG_BURST);
	ck_assert_uint_eq(s, 0);
	ck_assert_uint_eq(l.suppressed, 100 - KEVD_LOG_BURST);
}
END_TEST

START_TEST(refill_reports_suppressed)
{
	struct kevd_log_limit l = { 0 };
	uint64_t s = 0;

	passes(&l, T0, KEVD_LOG_BURST + 7, &s);
	/* Just short of an interval: nothing. */
	ck_assert_uint_eq(passes(&l, T0 + REFILL - 1, 1, &s), 0);
	/* One interval: one line, which carries the 8 held back. */
	ck_assert_uint_eq(passes(&l, T0 + REFILL, 3, &s), 1);
	ck_assert_uint_eq(s, 8);
	ck_assert_uint_eq(l.suppressed, 2);
	/* Five more intervals: five lines. */
	ck_assert_uint_eq(passes(&l, T0 + 6 * REFILL, 10, &s), 5);
	ck_assert_uint_eq(s, 0);
}
END_TEST

START_TEST(refill_capped_at_burst)
{
	struct kevd_log_limit l = { 0 };
	uint64_t s = 0;

	passes(&l, T0, KEVD_LOG_BURST, &s);
	ck_assert_uint_eq(passes(&l, T0 + 1000 * REFILL, 1000, &s), KEVD_LOG_BURST);
}
END_TEST

START_TEST(partial_intervals_add_up)
{
	struct kevd_log_limit l = { 0 };
	uint64_t s = 0;

	passes(&l, T0, KEVD_LOG_BURST, &s);
	ck_assert_uint_eq(passes(&l, T0 + REFILL / 2, 1, &s), 0);
	/* The half interval already passed is not lost. */
	ck_assert_uint_eq(passes(&l, T0 + REFILL, 1, &s), 1);
	ck_assert_uint_eq(passes(&l, T0 + REFILL + REFILL / 2, 1, &s), 0);
	ck_assert_uint_eq(passes(&l, T0 + 2 * REFILL, 1, &s), 1);
}
END_TEST

START_TEST(clock_back_adds_nothing)
{
	struct kevd_log_limit l = { 0 };
	uint64_t s = 0;

	passes(&l, T0, KEVD_LOG_BURST, &s);
	ck_assert_uint_eq(passes(&l, T0 - 100 * REFILL, 5, &s), 0);
	ck_assert_uint_eq(passes(&l, T0, 5, &s), 0);
}
END_TEST

/* ---- the call sites, with stderr sent to a file ---- */

static FILE *capture;
static int saved_stderr = -1;

static void capture_start(void)
{
	capture = tmpfile();
	ck_assert_ptr_nonnull(capture);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(fileno(capture), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr; the lines written meanwhile that contain WHAT. */
static unsigned capture_stop(const char *what, char *last, size_t lastlen)
{
	char line[2048];
	unsigned n = 0;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	rewind(capture);
	while (fgets(line, sizeof(line), capture))
		if (strstr(line, what)) {
			n++;
			if (last)
				snprintf(last, lastlen, "%s", line);
		}
	fclose(capture);
	return n;
}

static void warn_site_a(int i)
{
	kevd_warn("site a: message %d", i);
}

static void warn_site_b(int i)
{
	kevd_warn("site b: message %d", i);
}

static void warn_site_c(int i)
{
	kevd_warn("site c: message %d", i);
}

START_TEST(one_site_limited_another_apart)
{
	kevd_log_set_level(KEVD_LOG_WARN);
	capture_start();
	for (int i = 0; i < 1000; i++)
		warn_site_a(i);
	for (int i = 0; i < 3; i++)
		warn_site_b(i);
	/* The loop takes far less than KEVD_LOG_REFILL_MS; allow one refill. */
	ck_assert_uint_le(capture_stop("site a:", NULL, 0), KEVD_LOG_BURST + 1);
	capture_start();
	for (int i = 0; i < 3; i++)
		warn_site_b(i);
	ck_assert_uint_eq(capture_stop("site b:", NULL, 0), 3);
}
END_TEST

START_TEST(info_and_debug_not_limited)
{
	kevd_log_set_level(KEVD_LOG_DEBUG);
	capture_start();
	for (int i = 0; i < 500; i++)
		kevd_info("info line %d", i);
	for (int i = 0; i < 500; i++)
		kevd_debug("debug line %d", i);
	ck_assert_uint_eq(capture_stop("info line", NULL, 0), 500);
	capture_start();
	for (int i = 0; i < 500; i++)
		kevd_debug("debug line %d", i);
	ck_assert_uint_eq(capture_stop("debug line", NULL, 0), 500);
}
END_TEST

static void err_site(int i)
{
	kevd_err("error site: message %d", i);
}

START_TEST(errors_limited)
{
	kevd_log_set_level(KEVD_LOG_WARN);
	capture_start();
	for (int i = 0; i < 100; i++)
		err_site(i);
	ck_assert_uint_le(capture_stop("error site:", NULL, 0), KEVD_LOG_BURST + 1);
}
END_TEST

START_TEST(below_level_costs_nothing)
{
	kevd_log_set_level(KEVD_LOG_ERROR);
	capture_start();
	for (int i = 0; i < 100; i++)
		warn_site_c(i);
	ck_assert_uint_eq(capture_stop("site c:", NULL, 0), 0);
	kevd_log_set_level(KEVD_LOG_WARN);
	capture_start();
	for (int i = 0; i < KEVD_LOG_BURST; i++)
		warn_site_c(i);
	ck_assert_uint_eq(capture_stop("site c:", NULL, 0), KEVD_LOG_BURST);
}
END_TEST

START_TEST(suppressed_count_on_next_line)
{
	/* A site that ran dry long ago with 41 lines held back. */
	struct kevd_log_limit site = { .started = true, .tokens = 0, .last_ns = 1, .suppressed = 41 };
	char last[2048];

	kevd_log_set_level(KEVD_LOG_INFO);
	capture_start();
	kevd_log_site(&site, KEVD_LOG_INFO, "accept failed: %s", "Too many open files");
	ck_assert_uint_eq(capture_stop("accept failed", last, sizeof(last)), 1);
	ck_assert_str_eq(last, "kevd: info: accept failed: Too many open files (41 more suppressed)\n");
	ck_assert_uint_eq(site.suppressed, 0);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *limit = tcase_create("limit"), *sites = tcase_create("sites");

	tcase_add_test(limit, burst_then_suppressed);
	tcase_add_test(limit, refill_reports_suppressed);
	tcase_add_test(limit, refill_capped_at_burst);
	tcase_add_test(limit, partial_intervals_add_up);
	tcase_add_test(limit, clock_back_adds_nothing);
	tcase_add_test(sites, one_site_limited_another_apart);
	tcase_add_test(sites, info_and_debug_not_limited);
	tcase_add_test(sites, errors_limited);
	tcase_add_test(sites, below_level_costs_nothing);
	tcase_add_test(sites, suppressed_count_on_next_line);
	suite_add_tcase(s, limit);
	suite_add_tcase(s, sites);
	return s;
}

int main(void)
{
	return kevd_test_run(log_suite());
}

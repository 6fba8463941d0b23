/* Clock readings in nanoseconds, the one unit kevd's statistics use. */
#ifndef KEVD_TIME_H
#define KEVD_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t kevd_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif

/* Fault injection (see fault.h); compiled only for test builds. */
#include "config.h"

#include "common/fault.h"

#ifdef KEVD_FAULT_INJECTION
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SITES 8

static struct {
	char name[32];
	unsigned long at;      /* fail the at-th call */
	bool from;             /* "N+": and every later one */
	unsigned long calls;   /* atomic */
} sites[MAX_SITES];
static size_t nsites;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void parse(void)
{
	const char *spec = getenv("KEVD_FAULT_INJECT");

	while (spec && *spec && nsites < MAX_SITES) {
		const char *eq = strchr(spec, '='), *end = strchr(spec, ',');
		size_t len;

		if (!eq || (end && end < eq))
			break;
		len = (size_t)(eq - spec) < sizeof(sites[0].name) - 1 ? (size_t)(eq - spec) : sizeof(sites[0].name) - 1;
		memcpy(sites[nsites].name, spec, len);
		sites[nsites].name[len] = '\0';
		{
			char *num_end;

			sites[nsites].at = strtoul(eq + 1, &num_end, 10);
			sites[nsites].from = *num_end == '+';
		}
		nsites++;
		spec = end ? end + 1 : NULL;
	}
}

bool kevd_fault(const char *site)
{
	pthread_once(&once, parse);
	for (size_t i = 0; i < nsites; i++)
		if (!strcmp(sites[i].name, site)) {
			unsigned long n = __atomic_add_fetch(&sites[i].calls, 1, __ATOMIC_RELAXED);

			return n == sites[i].at || (sites[i].from && n > sites[i].at);
		}
	return false;
}
#endif

/*
 * Prometheus text exposition (format 0.0.4) of the daemon, its VMs and
 * their pagers.  Every metric is documented in docs/metrics.md.
 */
#ifndef KEVD_METRICS_H
#define KEVD_METRICS_H

#include <stddef.h>

struct kevd_http;
struct kevd_registry;
struct kevd_imagecache;
struct kevd_bootgate;
struct kevd_scrapes;

/* What a scrape reads; every part but reg and http may be NULL. */
struct kevd_metrics_sources {
	const struct kevd_registry *reg;     /* the VMs */
	const struct kevd_http *http;        /* the answers counted */
	struct kevd_imagecache *images;      /* the shared images */
	struct kevd_bootgate *gate;          /* the boot slots */
	const struct kevd_scrapes *scrapes;  /* the renders shared by scrapes */
};

/* Renders SRC into a malloc'd buffer (*TEXT, *LEN); -ENOMEM on failure. */
int kevd_metrics_render(const struct kevd_metrics_sources *src, char **text, size_t *len);

#endif

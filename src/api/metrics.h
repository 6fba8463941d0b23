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

/* Renders the VMs of REG, the shared IMAGES (may be NULL), the boot
 * slots of GATE (may be NULL) and the answers counted by HTTP into a
 * malloc'd buffer (*TEXT, *LEN); -ENOMEM on failure. */
int kevd_metrics_render(const struct kevd_registry *reg, const struct kevd_http *http, struct kevd_imagecache *images,
			struct kevd_bootgate *gate, char **text, size_t *len);

#endif

/*
 * Prometheus text exposition (format 0.0.4) of the daemon, its VMs and
 * their pagers.  Every metric is documented in docs/metrics.md.
 */
#ifndef KEVD_METRICS_H
#define KEVD_METRICS_H

#include <stddef.h>

struct kevd_server;

/* Renders into a malloc'd buffer (*TEXT, *LEN); -ENOMEM on failure. */
int kevd_metrics_render(struct kevd_server *srv, char **text, size_t *len);

#endif

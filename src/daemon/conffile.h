/*
 * The daemon's configuration: an ini file (inih parses the syntax), then
 * command-line flags on top of it, then one cross-field check.  A single key
 * table in conffile.c drives all of it: parsing and range checks, the
 * defaults, kevd_config_dump() and the key list that etc/kevd.conf and
 * docs/configuration.md are checked against.
 *
 * Use: kevd_config_init(), kevd_config_load() (optional), any number of
 * kevd_config_set(), then kevd_config_validate() once before using the
 * values.  Load and set leave the configuration unchanged when they fail.
 */

#ifndef KEVD_DAEMON_CONFIG_H
#define KEVD_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/error.h"
#include "common/log.h"
#include "daemon/confvalue.h"

struct kevd_config {
	/* [api] */
	char *socket_path;             /* socket: Unix socket of the HTTP API */
	unsigned socket_mode;          /* socket_mode: octal permissions of that socket */
	char *listen;                  /* listen: ADDR:PORT of a TCP listener; NULL = none */
	char *token_file;              /* token_file: bearer token for the TCP listener; NULL = none */
	size_t max_body_bytes;         /* max_body_bytes */
	unsigned request_timeout_s;    /* request_timeout, seconds */
	unsigned max_connections;      /* max_connections, per listener */
	/* [paths] */
	char *image_dir;               /* image_dir */
	char *state_dir;               /* state_dir */
	char *runtime_dir;             /* runtime_dir */
	/* [limits] */
	unsigned max_vms;              /* max_vms */
	unsigned max_vcpus;            /* max_vcpus per VM */
	unsigned vcpu_nice;            /* vcpu_nice */
	unsigned boot_slots_per_cpu;   /* boot_slots_per_cpu; 0 = no limit */
	unsigned boot_slot_ms;         /* boot_slot_ms */
	uint64_t max_memory_mib;       /* max_memory_mib per VM */
	uint64_t max_total_memory_mib; /* max_total_memory_mib over all VMs */
	size_t console_bytes;          /* console_bytes kept per VM */
	/* [pager] */
	unsigned pager_threads;        /* handler_threads */
	unsigned window_pages;         /* window_pages */
	unsigned window_max_pages;     /* window_max_pages */
	unsigned cache_keep_s;         /* cache_keep_s */
	uint64_t cache_max_mib;        /* cache_max_mib */
	/* [snapshot] */
	unsigned record_ms;            /* record_ms: working sets recorded for this long; 0 = none */
	unsigned spare_vms;            /* spare_vms: spare VMs kept for restores; 0 = none */
	/* [log] */
	enum kevd_log_level log_level; /* level */
	/* [metrics] */
	char *metrics_listen;          /* listen: ADDR:PORT serving /metrics and /v1/health; NULL = none */
};

/* One key of the table, for documentation and tests. */
struct kevd_config_key {
	const char *section;
	const char *key;
	const char *def;   /* the default as written in a file; "" when unset by default */
	const char *desc;  /* one line, with the accepted range */
};

/* The I-th key in file order, NULL past the last one. */
const struct kevd_config_key *kevd_config_key_at(size_t i);

/* Fills in the defaults.  Strings are strdup()ed; should that fail the
 * field stays NULL and kevd_config_validate() reports it. */
void kevd_config_init(struct kevd_config *c);
void kevd_config_free(struct kevd_config *c);

/* Applies the file at PATH on top of C.  Unknown sections and keys,
 * duplicated keys, bad values and syntax errors fail with "PATH:LINE: ...".
 * No cross-field checks: flags may still change things. */
int kevd_config_load(struct kevd_config *c, const char *path, struct kevd_error *err);

/* Sets one key from text, as a command-line flag does; messages start with
 * ORIGIN (e.g. "--socket"), or with "[section] key" when ORIGIN is NULL.
 * An empty VALUE unsets an optional string (listen, token_file). */
int kevd_config_set(struct kevd_config *c, const char *section, const char *key,
		    const char *value, const char *origin, struct kevd_error *err);

/* Checks the whole: every value in range, paths absolute, the socket path
 * short enough for sun_path, max_total_memory_mib >= max_memory_mib,
 * listen parseable and token_file set when listen is. */
int kevd_config_validate(const struct kevd_config *c, struct kevd_error *err);

/* Writes the configuration as an ini file that kevd_config_load() reads
 * back to the same values (for `kevd --check-config`). */
void kevd_config_dump(const struct kevd_config *c, FILE *f);

#endif

/*
 * kevctl's transport: one HTTP request to kevd over its Unix socket or over
 * TCP with a bearer token, answered into memory.  Every call returns one of
 * the exit classes below, so a command can hand the result straight back to
 * main(); on failure the error holds the line the user reads (the daemon's
 * fault_message, or why kevd could not be reached).
 */
#ifndef KEVCTL_CLIENT_H
#define KEVCTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/error.h"

/* kevctl's exit statuses (docs/kevctl.md; `kevctl --help`). */
enum {
	KEVCTL_OK = 0,
	KEVCTL_FAIL = 1,     /* anything else: bad answer, out of memory, ... */
	KEVCTL_USAGE = 2,
	KEVCTL_NOTFOUND = 3, /* 404 */
	KEVCTL_REFUSED = 4,  /* any other 4xx or 5xx */
	KEVCTL_DOWN = 5,     /* kevd not reachable, or did not answer in time */
};

#define KEVCTL_DEFAULT_SOCKET "/run/kevd/kevd.sock"

struct kevctl_client {
	CURL *curl;
	const char *socket;  /* used when url is NULL */
	const char *url;     /* http://ADDR:PORT, no trailing path */
	char *auth_header;   /* "Authorization: Bearer ..." or NULL */
	long timeout_ms;     /* per request; 0 = the default (30 s) */
};

/* How long a snapshot or a restore may take: the daemon writes or reads
 * the whole of the VM's memory before it answers. */
#define KEVCTL_SLOW_TIMEOUT_MS (10L * 60 * 1000)

struct kevctl_response {
	long status;
	char *body;              /* NUL-terminated; len excludes the NUL */
	size_t len;
	long long next_offset;   /* X-Console-Next-Offset, -1 if absent */
};

/* Sets up C for SOCKET or URL (URL wins); TOKEN_FILE, if not NULL, is read
 * now so that a bad file is reported before any request. */
int kevctl_client_init(struct kevctl_client *c, const char *socket, const char *url, const char *token_file,
		       struct kevd_error *err);
void kevctl_client_free(struct kevctl_client *c);

/* METHOD PATH (already escaped) with an optional JSON BODY.  Returns
 * KEVCTL_OK for a 2xx answer, else the exit class with ERR set; R holds
 * the answer either way once one arrived (free it with
 * kevctl_response_free). */
int kevctl_request(struct kevctl_client *c, const char *method, const char *path, json_t *body,
		   struct kevctl_response *r, struct kevd_error *err);
void kevctl_response_free(struct kevctl_response *r);

/* Like kevctl_request(), and parses a 2xx body as JSON into *OUT. */
int kevctl_request_json(struct kevctl_client *c, const char *method, const char *path, json_t *body,
			json_t **out, struct kevd_error *err);

/* "/v1/vms/<VM percent-encoded><SUFFIX>" into BUF; KEVCTL_USAGE if it does
 * not fit. */
int kevctl_vm_path(char *buf, size_t size, const char *vm, const char *suffix, struct kevd_error *err);

/* "/v1/snapshots/<NAME percent-encoded>" into BUF; as kevctl_vm_path(). */
int kevctl_snapshot_path(char *buf, size_t size, const char *name, struct kevd_error *err);

/* Where requests go, for messages: the socket path or the URL. */
const char *kevctl_client_where(const struct kevctl_client *c);

#endif

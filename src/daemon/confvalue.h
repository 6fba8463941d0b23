/*
 * How kevd.conf spells its values, apart from the table of keys that uses
 * them (conffile.c): numbers are digits only (no sign, no blanks, no
 * wrap-around), sizes take one K, M or G suffix, listen addresses are
 * ADDR:PORT with IPv6 in brackets.
 */
#ifndef KEVD_CONFVALUE_H
#define KEVD_CONFVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/error.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)

/* Leading digits of S in BASE (8 or 10) into *OUT, *REST after them;
 * false if S does not start with a digit or the number overflows. */
bool kevd_confvalue_digits(const char *s, int base, uint64_t *out, const char **rest);
/* "64K" -> 65536; -EINVAL for bad syntax, -ERANGE on overflow. */
int kevd_confvalue_size(const char *s, uint64_t *out);
/* The inverse: in the largest unit that divides V. */
void kevd_confvalue_format_size(char *buf, size_t len, uint64_t v);

/* Parses LISTEN ("192.0.2.1:8080" or "[2001:db8::1]:8080"; port 1..65535)
 * into ADDR/LEN, either of which may be NULL to only check it. */
int kevd_config_listen_addr(const char *listen, struct sockaddr_storage *addr, socklen_t *len,
			    struct kevd_error *err);

#endif

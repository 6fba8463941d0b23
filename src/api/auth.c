/* The TCP listener's bearer token check (see auth.h). */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "api/auth.h"

bool kevd_auth_public_path(const char *path)
{
	return !strcmp(path, "/metrics") || !strcmp(path, "/v1/health");
}

bool kevd_auth_allows(const char *token, const char *path, const char *authorization)
{
	static const char scheme[] = "Bearer ";
	const size_t sl = sizeof(scheme) - 1;
	size_t tl;
	unsigned char d = 0;

	if (!token)
		return false;  /* fail closed: a TCP listener without a token serves nothing */
	if (kevd_auth_public_path(path))
		return true;
	/* The scheme is case-insensitive (RFC 9110 11.1); the token is not. */
	if (!authorization || strncasecmp(authorization, scheme, sl) != 0)
		return false;
	tl = strlen(token);
	if (strlen(authorization + sl) != tl)
		return false;
	/* Constant time in the token's length: no early exit at the first wrong byte. */
	for (size_t i = 0; i < tl; i++)
		d |= (unsigned char)(authorization[sl + i] ^ token[i]);
	return d == 0;
}

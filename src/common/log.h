/*
 * Logging to stderr (journald adds time and unit when kevd runs as a
 * service).  One line per message, prefixed with the level.
 */
#ifndef KEVD_LOG_H
#define KEVD_LOG_H

enum kevd_log_level { KEVD_LOG_ERROR, KEVD_LOG_WARN, KEVD_LOG_INFO, KEVD_LOG_DEBUG };

void kevd_log_set_level(enum kevd_log_level level);
enum kevd_log_level kevd_log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; -1 if none of them. */
int kevd_log_parse_level(const char *s);
void kevd_log(enum kevd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define kevd_err(...) kevd_log(KEVD_LOG_ERROR, __VA_ARGS__)
#define kevd_warn(...) kevd_log(KEVD_LOG_WARN, __VA_ARGS__)
#define kevd_info(...) kevd_log(KEVD_LOG_INFO, __VA_ARGS__)
#define kevd_debug(...) kevd_log(KEVD_LOG_DEBUG, __VA_ARGS__)

#endif

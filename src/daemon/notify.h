/*
 * systemd's readiness protocol without libsystemd: state changes
 * ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...") go as one datagram
 * to the socket named by $NOTIFY_SOCKET, and the watchdog interval comes
 * from $WATCHDOG_USEC.  Outside systemd both are absent and every call is
 * a no-op.  Threads may call these concurrently (one socket per call).
 */
#ifndef KEVD_DAEMON_NOTIFY_H
#define KEVD_DAEMON_NOTIFY_H

#include <stdint.h>

/* Sends STATE (newline-separated assignments, e.g. "READY=1\nSTATUS=3 VMs")
 * to $NOTIFY_SOCKET: a path, or an abstract name when it starts with '@'.
 * Returns 0 when sent or when NOTIFY_SOCKET is unset or empty, negative
 * errno otherwise: -EAFNOSUPPORT for an address of another form (systemd's
 * "vsock:" ones), -ENAMETOOLONG, -EAGAIN when the receiver's queue is full
 * (the send never blocks: a wedged manager must not stall kevd's loop), or
 * whatever socket() and sendto() report. */
int kevd_notify(const char *state);
int kevd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog interval in microseconds from $WATCHDOG_USEC, when
 * $WATCHDOG_PID is unset or names this process; 0 when there is no
 * watchdog or either variable is not a valid number.  Send "WATCHDOG=1" at
 * least every half interval. */
uint64_t kevd_notify_watchdog_usec(void);

#endif

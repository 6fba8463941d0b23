/*
 * A 16550-style UART at the COM1 ports (0x3f8-0x3ff), enough for polled
 * output: transmitted bytes go to the VM's console, the line status always
 * says "ready", the other registers keep what the guest wrote.  With an
 * interrupt line attached (VMs with an in-kernel irqchip), it raises the
 * transmitter-empty interrupt the way Linux's 8250 driver expects after
 * early boot; without one it is purely polled.
 */
#ifndef KEVD_SERIAL_H
#define KEVD_SERIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/console.h"

#define KEVD_SERIAL_BASE 0x3f8
#define KEVD_SERIAL_PORTS 8

struct kevd_serial;

/* Drives the UART's interrupt line (0 or 1). */
typedef void (*kevd_serial_irq_fn)(void *arg, int level);

struct kevd_serial *kevd_serial_new(struct kevd_console *console);
void kevd_serial_set_irq(struct kevd_serial *s, kevd_serial_irq_fn fn, void *arg);
void kevd_serial_free(struct kevd_serial *s);

/* Handles an access to port BASE+offset; DATA is SIZE bytes.  Safe to call
 * from every vCPU thread. */
void kevd_serial_io(struct kevd_serial *s, uint16_t port, bool write, uint8_t *data, unsigned size);

#endif

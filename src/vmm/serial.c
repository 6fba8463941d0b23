/* A polled-output 16550 (see serial.h). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "vmm/serial.h"

#define REG_DATA 0      /* THR/RBR, or DLL with DLAB */
#define REG_IER 1       /* or DLM with DLAB */
#define REG_IIR 2       /* FCR on write */
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define REG_MSR 6
#define REG_SCR 7
#define LCR_DLAB 0x80
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IIR_NONE 0x01
#define MSR_DCD_DSR_CTS 0xb0
#define MCR_LOOP 0x10

struct kevd_serial {
	pthread_mutex_t lock;  /* protects the registers below */
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	struct kevd_console *console;  /* borrowed */
};

struct kevd_serial *kevd_serial_new(struct kevd_console *console)
{
	struct kevd_serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->console = console;
	s->dll = 12;  /* 9600 baud, as firmware leaves it */
	return s;
}

void kevd_serial_free(struct kevd_serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void kevd_serial_io(struct kevd_serial *s, uint16_t port, bool write, uint8_t *data, unsigned size)
{
	unsigned reg = (unsigned)(port - KEVD_SERIAL_BASE);
	uint8_t v = data[0];

	if (size != 1) {
		/* Wider accesses are not meaningful on a byte-wide UART. */
		if (!write)
			for (unsigned i = 0; i < size; i++)
				data[i] = 0xff;
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (write) {
		switch (reg) {
		case REG_DATA:
			if (s->lcr & LCR_DLAB) {
				s->dll = v;
			} else if (!(s->mcr & MCR_LOOP)) {
				pthread_mutex_unlock(&s->lock);
				kevd_console_put(s->console, &v, 1);
				return;
			}
			break;
		case REG_IER:
			if (s->lcr & LCR_DLAB)
				s->dlm = v;
			else
				s->ier = v & 0x0f;
			break;
		case REG_IIR: s->fcr = v; break;
		case REG_LCR: s->lcr = v; break;
		case REG_MCR: s->mcr = v & 0x1f; break;
		case REG_SCR: s->scr = v; break;
		default: break;  /* LSR and MSR are read-only */
		}
	} else {
		switch (reg) {
		case REG_DATA: v = s->lcr & LCR_DLAB ? s->dll : 0; break;
		case REG_IER: v = s->lcr & LCR_DLAB ? s->dlm : s->ier; break;
		case REG_IIR: v = IIR_NONE | (s->fcr & 1 ? 0xc0 : 0); break;
		case REG_LCR: v = s->lcr; break;
		case REG_MCR: v = s->mcr; break;
		case REG_LSR: v = LSR_THRE | LSR_TEMT; break;
		case REG_MSR: v = MSR_DCD_DSR_CTS; break;
		case REG_SCR: v = s->scr; break;
		default: v = 0xff; break;
		}
		data[0] = v;
	}
	pthread_mutex_unlock(&s->lock);
}

# Throwaway developer build (delete once the top-level build exists):
#   make -f tests/guests/dev.mk        (from /work/main; output in /tmp/tg)
O := /tmp/tg
G := tests/guests
GUEST_CFLAGS := -O2 -std=gnu11 -Wall -Wextra -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fcf-protection=none -fno-builtin \
  -mno-red-zone -mgeneral-regs-only -mcmodel=small -m64 -I$(G)
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=0x1000 \
  -Wl,-z,noexecstack -Wl,-T,$(G)/testguest.ld
all: $(O)/testguest.elf
$(O)/gendata: $(G)/gendata.c $(G)/testguest.h ; mkdir -p $(O) && gcc -O2 -Wall -Wextra -std=c99 -o $@ $<
$(O)/testguest-data.bin: $(O)/gendata ; $< $@
$(O)/%.o: $(G)/%.S $(G)/testguest.h $(O)/testguest-data.bin
	gcc $(GUEST_CFLAGS) -DTESTGUEST_DATA_BIN='"$(O)/testguest-data.bin"' -c -o $@ $<
$(O)/%.o: $(G)/%.c $(G)/testguest.h ; gcc $(GUEST_CFLAGS) -c -o $@ $<
$(O)/testguest.elf: $(O)/entry.o $(O)/guest.o $(O)/data.o $(G)/testguest.ld
	gcc $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(O)/entry.o $(O)/guest.o $(O)/data.o

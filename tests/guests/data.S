/*
 * data.S - the 32 MiB data image and the small array that follows it.
 *
 * TESTGUEST_DATA_BIN is the path of gendata's output, passed with -D by the
 * build (it lives in the build directory, not the source directory).
 */
#include "testguest.h"

#ifndef TESTGUEST_DATA_BIN
#error "define TESTGUEST_DATA_BIN to the path of the generated data image"
#endif

	.section .data.image, "aw", @progbits
	.balign 4096
	.globl testguest_data, testguest_data_end
	.type testguest_data, @object
testguest_data:
	.incbin TESTGUEST_DATA_BIN
testguest_data_end:
	.size testguest_data, testguest_data_end - testguest_data

/* Last initialised bytes of the data segment: 1, 2, ..., 100.  The linker
 * script places this section last, so p_filesz ends mid-page right after it
 * and the rest of that page must read as zero. */
	.section .data.tail, "aw", @progbits
	.balign 8
	.globl testguest_tail, testguest_tail_end
	.type testguest_tail, @object
testguest_tail:
	.irp hi, 0,10,20,30,40,50,60,70,80,90
	.irp lo, 1,2,3,4,5,6,7,8,9,10
	.byte \hi + \lo
	.endr
	.endr
testguest_tail_end:
	.size testguest_tail, testguest_tail_end - testguest_tail

	.section .note.GNU-stack, "", @progbits

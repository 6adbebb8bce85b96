/* Callgrind client requests for bench_overhead.py --callgrind --cache-sim, loaded with ctypes: the child turns
 * instrumentation (and with it the cache simulation) on before its warm-up, zeroes the counters after it and dumps
 * them after the measured calls, so start-up (imports) runs uninstrumented and the dump holds the calls alone.
 * Built at run time: cc -shared -fPIC -O2 -o callgrind_client.so callgrind_client.c (needs valgrind's headers). */
#include <valgrind/callgrind.h>

void pp_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void pp_zero(void) { CALLGRIND_ZERO_STATS; }
void pp_dump(void) { CALLGRIND_DUMP_STATS; }
void pp_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }

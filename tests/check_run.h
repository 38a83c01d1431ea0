/* Running a Check suite the way every polegate test does. */
#ifndef POLEGATE_TESTS_CHECK_RUN_H
#define POLEGATE_TESTS_CHECK_RUN_H

#include <check.h>

/* Run s (taking it), print Check's summary, EXIT_SUCCESS when every test passed. */
int pg_check_run(Suite *s);

#endif

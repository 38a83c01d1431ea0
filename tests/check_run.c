/* Running a Check suite the way every polegate test does (check_run.h). */
#include "check_run.h"

#include <stdlib.h>

int pg_check_run(Suite *s)
{
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

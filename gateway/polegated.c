/* polegated: the gateway daemon (placeholder until the daemon lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "polegated: not implemented yet\n");
    return 2;
}

/* polegate: command-line tool (placeholder until the CLI lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "polegate: not implemented yet\n");
    return 2;
}

/* Runs a fuzz harness without libFuzzer: every corpus file, then seeded mutations of them. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct s_input {
    uint8_t *data;
    size_t size;
} s_input;

static s_input *s_inputs;
static size_t s_n, s_cap;

static void s_add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (s_n == s_cap) {
        s_cap = s_cap ? s_cap * 2 : 64;
        s_inputs = realloc(s_inputs, s_cap * sizeof(*s_inputs));
    }
    s_inputs[s_n++] = (s_input){buf, got};
}

static void s_add(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: not found\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        s_add_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        s_add(p);
    }
    if (d)
        closedir(d);
}

static uint64_t s_state = 0x9E3779B97F4A7C15ULL;

static uint64_t s_rand(void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return s_state;
}

/* Markup and values that reach the parsers' corners. */
static const char *const s_tokens[] = {
    "<",
    ">",
    "&",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&#346;",
    "]]>",
    "<![CDATA[x]]>",
    "<!--",
    "-->",
    "<!DOCTYPE x>",
    "<?pi?>",
    "\"",
    "'",
    "\xff",
    "\xc3",
    "\xe2\x82",
    "\xef\xbf\xbe",
    "\0",
    " xmlns=\"urn:other\"",
    " xmlns:x=\"urn:x\"",
    "<x:y/>",
    "Op=\"Delete\"",
    "Op=\"Merge\"",
    "Handling=\"C\"",
    "29/03/2026 01:30:00",
    "25/10/2026 01:30:00",
    "00/00/0000",
    "99/99/9999",
    "0",
    "-1",
    "18446744073709551616",
    "9999999999999999999",
    "1e400",
    "NaN",
    "null",
    "[]",
    "{}",
    "\"\\u0000\"",
    "\"\\ud800\"",
    ",",
    ":",
    "true",
    "\"revision\": 0",
    "WPN-FA",
    "+44",
    "",
};

static void s_mutate(const s_input *in, uint8_t *out, size_t *size, size_t cap)
{
    size_t n = in->size < cap ? in->size : cap;
    memcpy(out, in->data, n);
    int rounds = 1 + (int)(s_rand() % 4);
    for (int r = 0; r < rounds; r++) {
        size_t pos = n ? s_rand() % n : 0;
        switch (s_rand() % 5) {
        case 0: /* flip a byte */
            if (n)
                out[pos] ^= (uint8_t)(1u << (s_rand() % 8));
            break;
        case 1: /* cut a range */
            if (n) {
                size_t len = s_rand() % (n - pos + 1);
                memmove(out + pos, out + pos + len, n - pos - len);
                n -= len;
            }
            break;
        case 2: { /* insert a token */
            const char *t = s_tokens[s_rand() % (sizeof s_tokens / sizeof s_tokens[0])];
            size_t tl = strlen(t) ? strlen(t) : 1;
            if (n + tl <= cap) {
                memmove(out + pos + tl, out + pos, n - pos);
                memcpy(out + pos, t, tl);
                n += tl;
            }
            break;
        }
        case 3: { /* copy a range of another input over here */
            const s_input *o = &s_inputs[s_rand() % s_n];
            if (o->size) {
                size_t from = s_rand() % o->size, len = s_rand() % (o->size - from + 1);
                if (pos + len > cap)
                    len = cap - pos;
                memcpy(out + pos, o->data + from, len);
                if (pos + len > n)
                    n = pos + len;
            }
            break;
        }
        default: /* truncate */
            n = pos;
        }
    }
    *size = n;
}

/* replay [-runs=N] [-seed=S] corpus-dir-or-file... */
int main(int argc, char **argv)
{
    long runs = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-runs=", 6) == 0)
            runs = atol(argv[i] + 6);
        else if (strncmp(argv[i], "-seed=", 6) == 0)
            s_state = strtoull(argv[i] + 6, NULL, 10) | 1;
        else
            s_add(argv[i]);
    }
    if (!s_n) {
        fprintf(stderr, "replay: no inputs\n");
        return 2;
    }
    for (size_t i = 0; i < s_n; i++)
        LLVMFuzzerTestOneInput(s_inputs[i].data, s_inputs[i].size);
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    for (long r = 0; r < runs; r++) {
        size_t size;
        s_mutate(&s_inputs[s_rand() % s_n], buf, &size, cap);
        LLVMFuzzerTestOneInput(buf, size);
    }
    printf("replay: %zu corpus inputs and %ld mutations, no property failed\n", s_n, runs);
    free(buf);
    for (size_t i = 0; i < s_n; i++)
        free(s_inputs[i].data);
    free(s_inputs);
    return 0;
}

/* polegated configuration: the YAML read through the config maps of config_keys.c, checked
 * across sections, into a pg_config. */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cfgmap.h"
#include "curve.h"
#include "kafka.h"
#include "keyfile.h"
#include "log.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "policy.h"
#include "store.h"

/* ---------------------------------------------------------------- loading */

typedef struct s_loader {
    pg_config *cfg;
    pg_buf errors;
    int nerrors;
} s_loader;

__attribute__((format(printf, 3, 4))) static void s_err(s_loader *ld, int line, const char *fmt,
                                                        ...)
{
    va_list ap;
    if (line > 0)
        pg_buf_printf(&ld->errors, "%s:%d: ", ld->cfg->path, line);
    else
        pg_buf_printf(&ld->errors, "%s: ", ld->cfg->path);
    char msg[PG_ERRSTR_SIZE];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pg_buf_printf(&ld->errors, "%s\n", msg);
    ld->nerrors++;
}

static int s_line(struct fy_node *fyn)
{
    struct fy_token *fyt = fyn ? fy_node_get_scalar_token(fyn) : NULL;
    const struct fy_mark *m = fyt ? fy_token_start_mark(fyt) : NULL;
    return m ? m->line + 1 : 0;
}

static const char *s_kind(struct fy_node *fyn)
{
    switch (fy_node_get_type(fyn)) {
    case FYNT_MAPPING:
        return "a mapping";
    case FYNT_SEQUENCE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* The text of a scalar node that holds a value, or NULL (null, empty, not a scalar). */
static const char *s_scalar(struct fy_node *fyn)
{
    if (!fyn || !fy_node_is_scalar(fyn) || fy_node_is_alias(fyn))
        return NULL;
    const char *s = fy_node_get_scalar0(fyn);
    if (!s)
        return NULL;
    if (fy_node_get_style(fyn) == FYNS_PLAIN &&
        (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")))
        return NULL;
    return s;
}

/* What a node is, for messages: "nothing" for a null. */
static const char *s_what(struct fy_node *fyn)
{
    if (!fyn || (fy_node_is_scalar(fyn) && !s_scalar(fyn)))
        return "nothing";
    return s_kind(fyn);
}

/* Bytes, with an optional binary multiple: 512, 64K, 8MiB, 1G. */
static int s_parse_size(const char *s, unsigned long long *out)
{
    static const struct {
        const char *suffix;
        int shift;
    } mult[] = {{"", 0},     {"B", 0},  {"K", 10},   {"KiB", 10}, {"M", 20},
                {"MiB", 20}, {"G", 30}, {"GiB", 30}, {"T", 40},   {"TiB", 40}};
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++) {
        if (strcmp(end, mult[i].suffix))
            continue;
        if (v > (ULLONG_MAX >> mult[i].shift))
            return -1;
        *out = v << mult[i].shift;
        return 0;
    }
    return -1;
}

static int s_parse_int(const char *s, long long *out)
{
    char *end;
    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || *end ? -1 : 0;
}

/* Store the text value of entry e into the config, converting and checking it. */
static void s_set(s_loader *ld, const pg_config_section *sec, const pg_config_entry *e,
                  const char *v, int line)
{
    pg_config *cfg = ld->cfg;
    void *field = (char *)cfg + e->offset;
    char why[PG_ERRSTR_SIZE];

    switch (e->type) {
    case PG_CONFIG_STR: {
        char **sp = field;
        free(*sp);
        *sp = strdup(v);
        if (!*sp) {
            s_err(ld, line, "out of memory");
            return;
        }
        break;
    }
    case PG_CONFIG_INT: {
        long long n;
        if (s_parse_int(v, &n) || n < e->min || n > e->max) {
            s_err(ld, line, "%s.%s: '%s' is not an integer from %lld to %lld", sec->name, e->key, v,
                  e->min, e->max);
            return;
        }
        *(int *)field = (int)n;
        break;
    }
    case PG_CONFIG_SIZE: {
        unsigned long long n;
        if (s_parse_size(v, &n)) {
            s_err(ld, line,
                  "%s.%s: '%s' is not a size (bytes, or a number with K, M, G, KiB, MiB, "
                  "GiB)",
                  sec->name, e->key, v);
            return;
        }
        if (n < (unsigned long long)e->min || n > (unsigned long long)e->max) {
            s_err(ld, line, "%s.%s: %llu bytes is outside %lld to %lld", sec->name, e->key, n,
                  e->min, e->max);
            return;
        }
        *(size_t *)field = (size_t)n;
        break;
    }
    case PG_CONFIG_COUNT: {
        long long n;
        if (s_parse_int(v, &n) || n < e->min || n > e->max) {
            s_err(ld, line, "%s.%s: '%s' is not a whole number from %lld to %lld", sec->name,
                  e->key, v, e->min, e->max);
            return;
        }
        *(size_t *)field = (size_t)n;
        break;
    }
    case PG_CONFIG_PROPS:
        return; /* only from a mapping, in s_props */
    }
    if (e->check && e->check(cfg, v, why, sizeof why))
        s_err(ld, line, "%s.%s: %s", sec->name, e->key, why);
}

/* The librdkafka properties that hold a secret. */
static int s_is_secret_property(const char *key)
{
    static const char *const secrets[] = {"sasl.password", "ssl.key.password",
                                          "ssl.keystore.password", "ssl.key.pem",
                                          "sasl.oauthbearer.client.secret"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (!strcmp(key, secrets[i]))
            return 1;
    return 0;
}

/* "<property>_file: PATH" or "<property>_env: NAME": *name gets the property, *value
 * the secret (both the caller's). 0 (also when key is neither) or PG_ECONFIG. */
static int s_secret_source(const char *key, const char *val, char **name, char **value,
                           char *errstr, size_t errstr_size)
{
    size_t kl = strlen(key);
    int file = kl > 5 && !strcmp(key + kl - 5, "_file");
    int env = kl > 4 && !strcmp(key + kl - 4, "_env");
    if (!file && !env)
        return 0;
    char *got = NULL;
    if (env) {
        const char *v = getenv(val);
        if (!v || !*v)
            return pg_errf(PG_ECONFIG, errstr, errstr_size,
                           "the environment variable %s is not set", val);
        got = strdup(v);
    } else {
        FILE *f = fopen(val, "re");
        if (!f)
            return pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: %s", val, strerror(errno));
        struct stat st;
        if (!fstat(fileno(f), &st) && (st.st_mode & 007)) {
            fclose(f);
            return pg_errf(PG_ECONFIG, errstr, errstr_size,
                           "%s: a secret readable by others (mode %03o): chmod o-rwx it", val,
                           (unsigned)(st.st_mode & 0777));
        }
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        got = strdup(buf);
        memset(buf, 0, sizeof buf);
    }
    *name = strndup(key, kl - (file ? 5 : 4));
    *value = got;
    if (!*name || !*value) {
        free(*name), free(*value);
        *name = *value = NULL;
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    }
    return 0;
}

/* An ssl.*.location the daemon cannot read fails at the first connection, long after
 * start: refuse it now. */
static int s_check_ssl_file(const char *key, const char *val, char *errstr, size_t errstr_size)
{
    size_t kl = strlen(key);
    if (strncmp(key, "ssl.", 4) || kl < 9 || strcmp(key + kl - 9, ".location"))
        return 0;
    if (access(val, R_OK))
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: cannot be read: %s", val,
                       strerror(errno));
    return 0;
}

static void s_props(s_loader *ld, const pg_config_section *sec, const pg_config_entry *e,
                    struct fy_node *map)
{
    pg_config *cfg = ld->cfg;
    int n = fy_node_mapping_item_count(map);
    if (n <= 0)
        return;
    cfg->kafka_properties = calloc((size_t)n, sizeof *cfg->kafka_properties);
    if (!cfg->kafka_properties) {
        s_err(ld, s_line(map), "out of memory");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
        const char *key = s_scalar(k), *val = s_scalar(v);
        int line = s_line(k);
        if (!key) {
            s_err(ld, line, "%s.%s: a key must be a property name", sec->name, e->key);
            continue;
        }
        if (!val) {
            s_err(ld, line, "%s.%s.%s: expected a scalar value, got %s", sec->name, e->key, key,
                  s_what(v));
            continue;
        }
        char why[PG_ERRSTR_SIZE];
        /* A secret need not sit in the YAML: "<property>_file: PATH" reads it from a
         * file, "<property>_env: NAME" from the environment. */
        char *name = NULL, *secret = NULL;
        if (s_secret_source(key, val, &name, &secret, why, sizeof why)) {
            s_err(ld, line, "%s.%s.%s: %s", sec->name, e->key, key, why);
            continue;
        }
        const char *pkey = name ? name : key, *pval = secret ? secret : val;
        if (!name && s_is_secret_property(key))
            cfg->kafka_secret_inline = 1;
        if (pg_kafka_check_property(pkey, pval, why, sizeof why) ||
            s_check_ssl_file(pkey, pval, why, sizeof why)) {
            s_err(ld, line, "%s.%s.%s: %s", sec->name, e->key, key, why);
            free(name), free(secret);
            continue;
        }
        pg_config_kv *kv = &cfg->kafka_properties[cfg->kafka_property_count];
        kv->key = name ? name : strdup(key);
        kv->value = secret ? secret : strdup(val);
        kv->line = line;
        if (!kv->key || !kv->value) {
            free(kv->key), free(kv->value);
            s_err(ld, line, "out of memory");
            continue;
        }
        cfg->kafka_property_count++;
    }
}

/* Keys that older configs had, and what replaced them; NULL for any other key. */
static const char *s_gone(const char *section, const char *key)
{
    if (!strcmp(section, "delivery") && !strcmp(key, "atx_id_prefix"))
        return "the ATX id prefix is a setting of the athena adapter: adapter.id_prefix";
    if (!strcmp(section, "kafka") && !strcmp(key, "topic"))
        return "each destination has its own topic (policy.destinations[].topic, "
               "docs/topics.md)";
    return NULL;
}

/* A key of the `adapter:` section beside name: a setting of the adapter named there
 * (its config map), checked by it once the whole section is read. */
static void s_adapter_setting(s_loader *ld, const char *key, struct fy_node *v, int line)
{
    pg_config *cfg = ld->cfg;
    if (!cfg->adapter)
        return; /* adapter.name is missing or wrong: reported */
    int i = pg_adapter_setting_index(cfg->adapter, key);
    if (i < 0) {
        char known[128] = "";
        for (const pg_adapter_setting *s = cfg->adapter->settings; s && s->key; s++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                     *known ? ", " : "", s->key);
        s_err(ld, line, "unknown key '%s' in section 'adapter' (the %s adapter's settings: %s)",
              key, cfg->adapter->name, *known ? known : "none");
        return;
    }
    const char *val = s_scalar(v);
    char why[PG_ERRSTR_SIZE];
    if (!val) {
        s_err(ld, line, "adapter.%s: expected a string, got %s", key, s_what(v));
        return;
    }
    if (cfg->adapter->settings[i].check && cfg->adapter->settings[i].check(val, why, sizeof why)) {
        s_err(ld, line, "adapter.%s: %s", key, why);
        return;
    }
    free(cfg->adapter_settings[i]);
    if (!(cfg->adapter_settings[i] = strdup(val)))
        s_err(ld, line, "out of memory");
}

/* One section being walked (pg_cfgmap callbacks). */
typedef struct s_walk {
    s_loader *ld;
    const pg_config_section *sec;
    struct fy_node *map;
    int sec_line;
} s_walk;

static int s_walk_value(void *ud, size_t i, struct fy_node *k, struct fy_node *v)
{
    s_walk *w = ud;
    const pg_config_entry *e = &w->sec->entries[i];
    int line = s_line(k);
    if (e->type == PG_CONFIG_PROPS) {
        if (v && fy_node_is_mapping(v))
            s_props(w->ld, w->sec, e, v);
        else if (strcmp(s_what(v), "nothing")) /* `properties:` alone is empty */
            s_err(w->ld, line, "%s.%s: expected a mapping, got %s", w->sec->name, e->key,
                  s_what(v));
        return 0;
    }
    const char *val = s_scalar(v);
    if (!val) {
        s_err(w->ld, line, "%s.%s: expected a %s, got %s", w->sec->name, e->key,
              pg_config__type_name(e->type), s_what(v));
        return 0;
    }
    s_set(w->ld, w->sec, e, val, line);
    return 0;
}

static int s_walk_unknown(void *ud, const char *name, struct fy_node *k, struct fy_node *v)
{
    (void)name;
    (void)v;
    s_walk *w = ud;
    const char *key = s_scalar(k);
    if (key && !strcmp(w->sec->name, "adapter"))
        return 0; /* the adapter's own settings: once its name is known */
    const char *gone = key ? s_gone(w->sec->name, key) : NULL;
    if (gone)
        s_err(w->ld, s_line(k), "%s.%s: no longer a setting: %s", w->sec->name, key, gone);
    else
        s_err(w->ld, s_line(k), "unknown key '%s' in section '%s'", key ? key : "?", w->sec->name);
    return 0;
}

static int s_walk_absent(void *ud, size_t i)
{
    s_walk *w = ud;
    const pg_config_entry *e = &w->sec->entries[i];
    if (e->flags & PG_CONFIG_REQUIRED) {
        if (w->map)
            s_err(w->ld, w->sec_line, "section '%s': missing required key '%s'", w->sec->name,
                  e->key);
        else
            s_err(w->ld, 0, "missing section '%s' (its key '%s' is required)", w->sec->name,
                  e->key);
    } else if (e->def && !(e->flags & PG_CONFIG_DERIVED) && e->type != PG_CONFIG_PROPS) {
        s_set(w->ld, w->sec, e, e->def, 0);
    }
    return 0;
}

static void s_section_load(s_loader *ld, const pg_config_section *sec, struct fy_node *map,
                           int sec_line)
{
    s_walk w = {.ld = ld, .sec = sec, .map = map, .sec_line = sec_line};
    pg_cfgmap cm = {.table = sec->entries,
                    .stride = sizeof *sec->entries,
                    .key_offset = offsetof(pg_config_entry, key),
                    .ud = &w,
                    .value = s_walk_value,
                    .unknown = s_walk_unknown,
                    .absent = s_walk_absent};
    pg_cfgmap_walk(&cm, map, NULL);
    /* The adapter's own settings, now that its name is known. */
    for (void *it = NULL; map && !strcmp(sec->name, "adapter");) {
        struct fy_node_pair *pair = fy_node_mapping_iterate(map, &it);
        if (!pair)
            break;
        const char *key = s_scalar(fy_node_pair_key(pair));
        if (key && strcmp(key, "name"))
            s_adapter_setting(ld, key, fy_node_pair_value(pair), s_line(fy_node_pair_key(pair)));
    }
}

/* The audit keys read as the daemon reads them at its start, so that --check-config
 * and a reload refuse what the start would (a missing file, a mode other than 0600,
 * not hex), not a start under systemd that fails in a loop. Nothing read is kept. */
static void s_derive_audit_keys(s_loader *ld)
{
    pg_config *cfg = ld->cfg;
    char why[PG_ERRSTR_SIZE];
    pg_audit_key key;
    pg_audit_signing_key sk;
    if (cfg->audit_key_file && pg_audit_key_load(cfg->audit_key_file, &key, why, sizeof why))
        s_err(ld, 0, "audit.key_file: %s", why);
    if (cfg->audit_signing_key_file &&
        pg_audit_signing_key_load(cfg->audit_signing_key_file, &sk, why, sizeof why))
        s_err(ld, 0, "audit.signing_key_file: %s", why);
    sodium_memzero(&key, sizeof key);
    sodium_memzero(&sk, sizeof sk);
}

/* path absolute, without ".", ".." or repeated slashes, into out ("" when it does not
 * fit): the longest part of it that exists through its links (realpath: a ".." after a
 * link is the link target's parent, as the kernel takes it), the rest lexically, each
 * part of it that exists again after a ".." through its links too (dir/new/../link,
 * with new made by the store's mkdir, is dir/link). */
static void s_canon_path(const char *path, char *out, size_t size)
{
    char abs[PATH_MAX], cwd[PATH_MAX];
    out[0] = '\0';
    if (*path != '/') {
        if (!getcwd(cwd, sizeof cwd) ||
            (size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= sizeof abs)
            return;
    } else if ((size_t)snprintf(abs, sizeof abs, "%s", path) >= sizeof abs) {
        return;
    }
    char head[PATH_MAX], norm[PATH_MAX], real[PATH_MAX];
    snprintf(head, sizeof head, "%s", abs);
    while (!realpath(head, norm)) {
        char *slash = strrchr(head, '/');
        if (!slash)
            return;
        slash[slash == head] = '\0'; /* "/x" -> "/" */
    }
    size_t n = strcmp(norm, "/") ? strlen(norm) : 0;
    char *save = NULL;
    for (char *c = strtok_r(abs + strlen(head), "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, "."))
            continue;
        if (!strcmp(c, "..")) {
            while (n && norm[n - 1] != '/')
                n--;
            if (n)
                n--;
            continue;
        }
        int w = snprintf(norm + n, sizeof norm - n, "/%s", c);
        if (w < 0 || (size_t)w >= sizeof norm - n)
            return;
        n += (size_t)w;
        if (realpath(norm, real)) { /* reached what exists again, after a ".." */
            snprintf(norm, sizeof norm, "%s", real);
            n = strcmp(norm, "/") ? strlen(norm) : 0;
        }
    }
    norm[n] = '\0';
    if ((size_t)snprintf(out, size, "%s", n ? norm : "/") >= size)
        out[0] = '\0';
}

/* Is a (canonical) b, or inside it? */
static int s_within(const char *a, const char *b)
{
    size_t n = strlen(b);
    if (!strcmp(b, "/"))
        return 1;
    return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

/* The directories the daemon keeps its state in. */
static void s_check_paths(s_loader *ld)
{
    pg_config *cfg = ld->cfg;
    /* Every file in the drop directory is taken in as a message from the RMS: the
     * store and the audit log must not be among them (the store's directory not
     * around it either: a file is not a directory). */
    const struct {
        const char *key, *path, *what;
        int dir; /* a directory: intake.directory inside it is refused too */
    } state[] = {{"store.path", cfg->store_path, "store", 1},
                 {"audit.path", cfg->audit_path, "audit log", 0}};
    for (size_t i = 0; cfg->intake_directory && i < sizeof state / sizeof state[0]; i++) {
        char dir[PATH_MAX], at[PATH_MAX];
        if (!state[i].path)
            continue;
        s_canon_path(cfg->intake_directory, dir, sizeof dir);
        s_canon_path(state[i].path, at, sizeof at);
        if (*dir && *at && state[i].dir && s_within(dir, at))
            s_err(ld, 0,
                  "intake.directory: '%s' is %s '%s' or inside it: the daemon would take in "
                  "its own %s",
                  cfg->intake_directory, state[i].key, state[i].path, state[i].what);
        else if (*dir && *at && s_within(at, dir))
            s_err(ld, 0,
                  "intake.directory: '%s' holds %s '%s': the daemon would take in its own %s",
                  cfg->intake_directory, state[i].key, state[i].path, state[i].what);
    }
    /* Whoever can write the store's directory can replace the store, its write-ahead
     * log and the audit log beside it. Not there yet: the store makes it (0700). */
    struct stat st;
    char why[PG_ERRSTR_SIZE];
    if (cfg->store_path && !stat(cfg->store_path, &st)) {
        /* An operator's command run as root works on the daemon user's store: its
         * owner is not checked then, its mode is. */
        if (geteuid() == 0)
            st.st_uid = 0;
        if (pg_keyfile_check_writers(cfg->store_path, &st, why, sizeof why))
            s_err(ld, 0, "store.path: %s", why);
    }
}

/* Defaults that depend on other settings, and rules across sections. */
/* CURVE on the RMS side: keys read (fail closed: an unreadable key stops the start),
 * plain text only on loopback with curve.insecure. */
static void s_derive_curve(s_loader *ld)
{
    pg_config *cfg = ld->cfg;
    char why[PG_ERRSTR_SIZE];
    if (cfg->curve_secret_key_file &&
        pg_curve_key_load(cfg->curve_secret_key_file, 1, cfg->curve_secret, why, sizeof why))
        s_err(ld, 0, "curve.secret_key_file: %s", why);
    if (cfg->curve_rms_import_key_file &&
        pg_curve_key_load(cfg->curve_rms_import_key_file, 0, cfg->curve_rms_import_key, why,
                          sizeof why))
        s_err(ld, 0, "curve.rms_import_key_file: %s", why);
    if (cfg->curve_intake_clients_file) {
        pg_curve_allow *allow =
            pg_curve_allow_load(cfg->curve_intake_clients_file, why, sizeof why);
        if (!allow)
            s_err(ld, 0, "curve.intake_clients_file: %s", why);
        pg_curve_allow_destroy(&allow);
    }
    int secret = cfg->curve_secret_key_file != NULL;
    if (cfg->intake_endpoint) {
        if (secret && !cfg->curve_intake_clients_file)
            s_err(ld, 0,
                  "intake.endpoint: CURVE needs curve.intake_clients_file (the RMS keys "
                  "allowed)");
        else if (!secret && !cfg->curve_insecure)
            s_err(ld, 0,
                  "intake.endpoint: plain text: give curve.secret_key_file and "
                  "curve.intake_clients_file, or curve.insecure: true (loopback only)");
        else if (!secret && !pg_curve_endpoint_is_local(cfg->intake_endpoint))
            s_err(ld, 0,
                  "intake.endpoint: %s is reachable from other hosts: plain text is refused "
                  "there even with curve.insecure",
                  cfg->intake_endpoint);
    }
    if (cfg->delivery_endpoint && cfg->delivery_transport &&
        !strcmp(cfg->delivery_transport, "zmq")) {
        if (secret && !cfg->curve_rms_import_key_file)
            s_err(ld, 0,
                  "delivery.endpoint: CURVE needs curve.rms_import_key_file (the RMS "
                  "import endpoint's public key)");
        else if (!secret && !cfg->curve_insecure)
            s_err(ld, 0,
                  "delivery.endpoint: plain text: give curve.secret_key_file and "
                  "curve.rms_import_key_file, or curve.insecure: true (loopback only)");
        else if (!secret && !pg_curve_endpoint_is_local(cfg->delivery_endpoint))
            s_err(ld, 0,
                  "delivery.endpoint: %s is reachable from other hosts: plain text is refused "
                  "there even with curve.insecure",
                  cfg->delivery_endpoint);
    }
}

static void s_derive(s_loader *ld)
{
    pg_config *cfg = ld->cfg;
    if (!cfg->dlq_topic && cfg->force_lower) {
        char topic[64];
        snprintf(topic, sizeof topic, "polegate.%s.dlq.v1", cfg->force_lower);
        cfg->dlq_topic = strdup(topic);
        if (!cfg->dlq_topic)
            s_err(ld, 0, "out of memory");
    }
    if (!cfg->audit_topic && cfg->force_lower) {
        char topic[64];
        snprintf(topic, sizeof topic, "polegate.%s.audit.v1", cfg->force_lower);
        if (!(cfg->audit_topic = strdup(topic)))
            s_err(ld, 0, "out of memory");
    }
    if (!cfg->audit_path && cfg->store_path) {
        size_t n = strlen(cfg->store_path);
        int slash = n && cfg->store_path[n - 1] == '/';
        if (asprintf(&cfg->audit_path, "%s%saudit.log", cfg->store_path, slash ? "" : "/") < 0) {
            cfg->audit_path = NULL;
            s_err(ld, 0, "out of memory");
        }
    }
    if (!cfg->delivery_group_id && cfg->force_lower) {
        char group[64];
        snprintf(group, sizeof group, "polegate.%s.partners", cfg->force_lower);
        cfg->delivery_group_id = strdup(group);
        if (!cfg->delivery_group_id)
            s_err(ld, 0, "out of memory");
    }
    if (cfg->delivery_endpoint && cfg->delivery_transport &&
        !strcmp(cfg->delivery_transport, "zmq")) {
        char why[PG_ERRSTR_SIZE];
        if (pg_config__check_endpoint(cfg, cfg->delivery_endpoint, why, sizeof why))
            s_err(ld, 0, "delivery.endpoint: %s", why);
    }
    if (!cfg->intake_endpoint && !cfg->intake_directory)
        s_err(ld, 0, "intake: give an endpoint, a directory, or both");
    s_check_paths(ld);
    s_derive_curve(ld);
    s_derive_audit_keys(ld);
    if (cfg->adapter) {
        size_t max = cfg->adapter->max_message_size;
        if (!cfg->intake_max_message_size)
            cfg->intake_max_message_size = max;
        else if (cfg->intake_max_message_size > max)
            s_err(ld, 0,
                  "intake.max_message_size: %zu bytes exceeds the %s adapter's maximum "
                  "of %zu bytes",
                  cfg->intake_max_message_size, cfg->adapter->name, max);
    }
    /* The intake stops adding at the headroom: a map that cannot hold two of the
     * largest messages beyond it would answer retry to them for ever. */
    size_t need = 2 * PG_STORE_GROWTH(cfg->intake_max_message_size);
    size_t head = pg_store_headroom(cfg->store_map_size);
    if (cfg->store_map_size < head + need)
        s_err(ld, 0,
              "store.map_size: %zu bytes leaves %zu bytes beyond the %zu kept free for "
              "removals, less than two of the largest messages may take (%zu bytes for "
              "intake.max_message_size %zu); raise store.map_size",
              cfg->store_map_size, cfg->store_map_size > head ? cfg->store_map_size - head : 0,
              head, need, cfg->intake_max_message_size);
}

/* One problem of the policy section, already "FILE:LINE:COL: policy...: what". */
static void s_policy_problem(void *ud, const char *problem)
{
    s_loader *ld = ud;
    pg_buf_printf(&ld->errors, "%s\n", problem);
    ld->nerrors++;
}

/* The gateway's own topics carry what no destination or partner may share: the dead
 * letters (original record bytes) and the audit checkpoints. Each of p's destinations
 * and partners that publishes to dlq_topic or audit_topic is reported; when says which
 * (the file's own, or those still in force at a reload). */
static void s_own_topics(s_loader *ld, int line, const pg_policy *p, const char *dlq_topic,
                         const char *audit_topic, const char *when)
{
    const struct {
        const char *topic, *what;
    } own[] = {{dlq_topic, "the dead-letter topic"}, {audit_topic, "the audit checkpoint topic"}};
    for (size_t t = 0; t < sizeof own / sizeof own[0]; t++) {
        if (!own[t].topic)
            continue;
        for (size_t i = 0; i < pg_policy_destination_count(p); i++)
            if (!strcmp(pg_policy_destination_at(p, i)->topic, own[t].topic))
                s_err(ld, line, "policy.destinations[%zu] (%s): topic '%s' is %s%s", i,
                      pg_policy_destination_at(p, i)->name, own[t].topic, own[t].what, when);
        for (size_t i = 0; i < pg_policy_partner_count(p); i++)
            if (!strcmp(pg_policy_partner_at(p, i)->topic, own[t].topic))
                s_err(ld, line, "policy.partners[%zu] (%s): topic '%s' is %s%s", i,
                      pg_policy_partner_at(p, i)->force, own[t].topic, own[t].what, when);
    }
}

/* The `policy:` section, parsed by the policy module once the force is known, and the
 * rules between it and the other sections. */
static void s_policy(s_loader *ld, struct fy_node *node, int line)
{
    pg_config *cfg = ld->cfg;
    if (!line) {
        s_err(ld, 0,
              "missing section 'policy': without destinations this gateway would publish "
              "nothing (each destination names its topic, agreement and what it may "
              "receive: docs/policy.md)");
        return;
    }
    if (!cfg->force)
        return; /* reported above; the policy is checked against our force */
    char why[PG_ERRSTR_SIZE];
    int before = ld->nerrors;
    cfg->policy =
        pg_policy_parse_each(node, cfg->path, cfg->force, s_policy_problem, ld, why, sizeof why);
    if (!cfg->policy) {
        if (ld->nerrors == before) /* out of memory, or a problem not reported one by one */
            s_policy_problem(ld, why);
        return;
    }
    const pg_policy *p = cfg->policy;
    if (!pg_policy_destination_count(p))
        s_err(ld, line,
              "policy.destinations: none: this gateway would publish nothing (add the "
              "national service or a partner force: docs/policy.md)");
    s_own_topics(ld, line, p, cfg->dlq_topic, cfg->audit_topic, "");
    if (cfg->dlq_topic && cfg->audit_topic && !strcmp(cfg->dlq_topic, cfg->audit_topic))
        s_err(ld, line, "audit.topic: '%s' is the dead-letter topic", cfg->audit_topic);
}

static void s_diag_collect(s_loader *ld, struct fy_diag *diag)
{
    void *it = NULL;
    struct fy_diag_error *de;
    int any = 0;
    while ((de = fy_diag_errors_iterate(diag, &it))) {
        s_err(ld, de->line, "YAML: %s", de->msg); /* already 1-based */
        any = 1;
    }
    if (!any) /* libfyaml makes no document, and says nothing, of no YAML at all */
        s_err(ld, 0, "the configuration is empty (no YAML document)");
}

static void s_load_root(s_loader *ld, struct fy_document *fyd)
{
    struct fy_node *root = fy_document_root(fyd);
    struct fy_node *found[PG_CONFIG_MAX_SECTIONS] = {0}, *policy = NULL;
    int lines[PG_CONFIG_MAX_SECTIONS] = {0}, policy_line = 0;

    if (!root || (fy_node_is_scalar(root) && !s_scalar(root))) {
        s_err(ld, 0, "the configuration is empty");
        return;
    }
    if (!fy_node_is_mapping(root)) {
        s_err(ld, 1, "the configuration must be a mapping of sections, not %s", s_kind(root));
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(root, &it))) {
        struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
        const char *name = s_scalar(k);
        if (name && !strcmp(name, "policy")) {
            policy = v;
            policy_line = s_line(k);
            continue;
        }
        size_t i = 0;
        for (; name && i < pg_config__nsections; i++)
            if (!strcmp(pg_config__sections[i].name, name))
                break;
        if (!name || i == pg_config__nsections) {
            char known[512] = "";
            for (size_t j = 0; j < pg_config__nsections; j++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ",
                         pg_config__sections[j].name);
            s_err(ld, s_line(k), "unknown section '%s' (sections: %spolicy)", name ? name : "?",
                  known);
            continue;
        }
        lines[i] = s_line(k);
        if (!v || !fy_node_is_mapping(v)) {
            s_err(ld, lines[i], "section '%s' must be a mapping of keys, not %s", name, s_what(v));
            lines[i] = -1;
            continue;
        }
        found[i] = v;
    }
    for (size_t i = 0; i < pg_config__nsections; i++)
        if (lines[i] >= 0) /* a section that was not a mapping is reported once */
            s_section_load(ld, &pg_config__sections[i], found[i], lines[i]);
    s_derive(ld);
    s_policy(ld, policy, policy_line);
}

static pg_config *s_read(const char *name, const char *text, size_t len, char *errstr,
                         size_t errstr_size)
{
    s_loader ld = {.errors = PG_BUF_INIT};
    ld.cfg = calloc(1, sizeof *ld.cfg);
    if (!ld.cfg || !(ld.cfg->path = strdup(name))) {
        free(ld.cfg);
        pg_errf(PG_ENOMEM, errstr, errstr_size, "%s: out of memory", name);
        return NULL;
    }

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag)
        fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_JSON_NONE, .diag = diag};
    struct fy_document *fyd;
    if (text)
        fyd = fy_document_build_from_string(&pcfg, text, len);
    else
        fyd = fy_document_build_from_file(&pcfg, name);
    if (!fyd)
        s_diag_collect(&ld, diag);
    else
        s_load_root(&ld, fyd);
    fy_document_destroy(fyd);
    fy_diag_destroy(diag);

    if (ld.nerrors) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "%.*s", (int)(ld.errors.len - 1),
                (const char *)ld.errors.data);
        pg_buf_free(&ld.errors);
        pg_config_destroy(&ld.cfg);
        return NULL;
    }
    pg_buf_free(&ld.errors);
    return ld.cfg;
}

/* The largest configuration file read: a policy of many destinations is a few hundred
 * KiB; anything near this is not one. */
#define PG_CONFIG_MAX_BYTES (16u << 20)

pg_config *pg_config_load(const char *path, char *errstr, size_t errstr_size)
{
    /* Whoever can write the file sets the policy and every key the gateway trusts. The
     * checks and the parse are of one open file: checking the name and then reading it
     * again would read whatever was put there in between. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: cannot read the file: %s", path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char why[PG_ERRSTR_SIZE];
    const char *bad = !S_ISREG(st.st_mode)                         ? "not a regular file"
                      : (uint64_t)st.st_size > PG_CONFIG_MAX_BYTES ? "larger than 16 MiB"
                                                                   : NULL;
    if (bad || pg_keyfile_check_writers(path, &st, why, sizeof why)) {
        if (bad)
            pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: %s", path, bad);
        else
            pg_errf(PG_ECONFIG, errstr, errstr_size, "%s", why);
        close(fd);
        return NULL;
    }
    size_t len = 0, cap = (size_t)st.st_size + 1;
    char *text = malloc(cap);
    ssize_t got = 1;
    while (text && got > 0 && len < cap) {
        got = read(fd, text + len, cap - len);
        if (got > 0)
            len += (size_t)got;
        else if (got < 0 && errno == EINTR)
            got = 1;
    }
    int err = errno;
    close(fd);
    if (!text || got < 0 || len == cap) {
        pg_errf(!text ? PG_ENOMEM : PG_ECONFIG, errstr, errstr_size, "%s: %s", path,
                !text     ? "out of memory"
                : got < 0 ? strerror(err)
                          : "the file grew while it was read");
        free(text);
        return NULL;
    }
    pg_config *cfg = s_read(path, text, len, errstr, errstr_size);
    free(text);
    return cfg;
}

pg_config *pg_config_parse(const char *name, const char *text, size_t len, char *errstr,
                           size_t errstr_size)
{
    return s_read(name, text, len, errstr, errstr_size);
}

/* "name=topic, name=topic" of p's destinations, as the router names them (cut at
 * size). */
static void s_destinations_text(const pg_policy *p, char *out, size_t size)
{
    size_t w = 0;
    out[0] = '\0';
    for (size_t i = 0; i < pg_policy_destination_count(p) && w < size; i++)
        w += (size_t)snprintf(out + w, size - w, "%s%s=%s", i ? ", " : "",
                              pg_policy_destination_at(p, i)->name,
                              pg_policy_destination_at(p, i)->topic);
}

int pg_config_check_reload(const pg_config *running, const pg_config *next, char *errstr,
                           size_t errstr_size)
{
    s_loader ld = {.cfg = (pg_config *)next, .errors = PG_BUF_INIT};
    /* dlq.topic and audit.topic take effect at the next start: until then the running
     * values are the gateway's own topics, whatever the new file says. */
    if (next->policy)
        s_own_topics(&ld, 0, next->policy, running->dlq_topic, running->audit_topic,
                     " still in force (a change of dlq.topic or audit.topic takes effect at "
                     "the next start)");
    /* The version is what says the policy changed, as at a start (the router's
     * reconcile): other rules under the running version are a mistake, not a change. */
    const pg_policy *was = running->policy, *now = next->policy;
    if (was && now && !strcmp(pg_policy_version(was), pg_policy_version(now)) &&
        strcmp(pg_policy_digest(was), pg_policy_digest(now))) {
        char before[PG_ERRSTR_SIZE / 2], after[PG_ERRSTR_SIZE / 2];
        s_destinations_text(was, before, sizeof before);
        s_destinations_text(now, after, sizeof after);
        if (!strcmp(before, after))
            s_err(&ld, 0,
                  "policy.version %s did not change but its rules did (its destinations are the "
                  "same: %s): give a changed policy a new policy.version",
                  pg_policy_version(now), after);
        else
            s_err(&ld, 0,
                  "policy.version %s did not change but its destinations did (running: %s; "
                  "now: %s): give a changed policy a new policy.version",
                  pg_policy_version(now), before, after);
    }
    int rc = 0;
    if (ld.nerrors)
        rc = pg_errf(PG_ECONFIG, errstr, errstr_size, "%.*s", (int)(ld.errors.len - 1),
                     (const char *)ld.errors.data);
    pg_buf_free(&ld.errors);
    return rc;
}

int pg_config_warnings(const pg_config *cfg, void (*fn)(void *ud, const char *warning), void *ud)
{
    int n = 0;
    if (cfg->curve_insecure) {
        fn(ud, "curve.insecure: true: the intake and delivery speak plain text; anyone who can "
               "reach them can change or delete any record (docs/security.md)");
        n++;
    }
    struct stat st;
    if (cfg->kafka_secret_inline && cfg->path && !stat(cfg->path, &st) && (st.st_mode & 077)) {
        fn(ud, "kafka.properties holds a secret and the config file is readable by group or "
               "others: chmod 600 it, or give the secret as <property>_file or <property>_env");
        n++;
    }
    if (!cfg->audit_key_file || !cfg->audit_signing_key_file) {
        fn(ud, !cfg->audit_key_file
                   ? "audit.key_file: none: the audit log's hash chain is not keyed, so whoever "
                     "can write its disk can rewrite it unseen (docs/policy.md)"
                   : "audit.signing_key_file: none: no signed checkpoints, so the end of the "
                     "audit log can be cut unseen (docs/policy.md)");
        n++;
    }
    return n;
}

void pg_config_destroy(pg_config **p)
{
    if (!p || !*p)
        return;
    pg_config *cfg = *p;
    for (size_t i = 0; i < pg_config__nsections; i++)
        for (const pg_config_entry *e = pg_config__sections[i].entries; e->key; e++)
            if (e->type == PG_CONFIG_STR)
                free(*(char **)((char *)cfg + e->offset));
    for (size_t i = 0; i < cfg->kafka_property_count; i++) {
        free(cfg->kafka_properties[i].key);
        free(cfg->kafka_properties[i].value);
    }
    free(cfg->kafka_properties);
    for (size_t i = 0; i < PG_ADAPTER_MAX_SETTINGS; i++)
        free(cfg->adapter_settings[i]);
    pg_policy_destroy(&cfg->policy);
    free(cfg->force_lower);
    free(cfg->path);
    free(cfg);
    *p = NULL;
}

/* bb_clientsetup: the lines each package client needs (composer, pip, uv, poetry, npm, yarn, pnpm) to use a mirror with a Bitbucket HTTP access token. */
#include <string.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include "bb_url.h"
#include "bb_clientsetup.h"

/* The parts of a mirror URL the snippets are made of. */
typedef struct {
    const char *url;          /* as configured */
    const char *scheme;       /* "http" or "https" */
    const char *hostname;     /* without port; IPv6 in brackets */
    const char *host;         /* hostname[:port], as composer keys its credentials */
    const char *path;         /* "/" when the URL has none */
    int insecure;             /* plain http: the clients want to be told that it is on purpose */
} mirror_t;

typedef const char *snippet_fn(apr_pool_t *p, const mirror_t *m, const char *username);

/* 'value' for a POSIX shell, with ' written as '\''. */
static const char *sq(apr_pool_t *p, const char *value)
{
    apr_size_t quotes = 0;
    const char *c;
    char *out, *o;

    for (c = value; *c; c++) {
        quotes += *c == '\'';
    }
    o = out = apr_palloc(p, strlen(value) + quotes * 3 + 3);
    *o++ = '\'';
    for (c = value; *c; c++) {
        if (*c == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        }
        else {
            *o++ = *c;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

/* The URL with user:<token>@ before the host. */
static const char *url_with_credentials(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, m->scheme, "://", bb_url_encode(p, username), ":" BB_CLIENTSETUP_PLACEHOLDER "@", m->host,
                       m->path, NULL);
}

static const char *composer_lines(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, m->insecure ? "composer config --global secure-http false\n" : "",
                       "composer config --global repositories.mirror composer ", sq(p, m->url), "\n",
                       "composer config --global http-basic.", m->host, " ", sq(p, username), " '"
                       BB_CLIENTSETUP_PLACEHOLDER "'\n", NULL);
}

static const char *pip_lines(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, "[global]\nindex-url = ", url_with_credentials(p, m, username), "\n",
                       m->insecure ? apr_pstrcat(p, "trusted-host = ", m->hostname, "\n", NULL) : "", NULL);
}

static const char *uv_lines(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, "export UV_DEFAULT_INDEX=", sq(p, url_with_credentials(p, m, username)), "\n", NULL);
}

static const char *poetry_lines(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, "poetry source add --priority=primary mirror ", sq(p, m->url), "\n",
                       "poetry config http-basic.mirror ", sq(p, username), " '" BB_CLIENTSETUP_PLACEHOLDER "'\n",
                       NULL);
}

/* npm and pnpm: the token is sent to exactly this registry's host and path, nowhere else. */
static const char *npmrc_lines(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, "registry=", m->url, "\n//", m->host, m->path, ":_authToken=" BB_CLIENTSETUP_PLACEHOLDER
                       "\n", NULL);
}

/* Yarn 2+: without npmAlwaysAuth it asks for an unscoped package without the token and takes the 401 as "not found"
 * (Yarn 1 likewise without always-auth=true, which is not in the npm lines because npm 9+ warns about it). */
static const char *yarnrc_lines(apr_pool_t *p, const mirror_t *m, const char *username)
{
    return apr_pstrcat(p, "npmRegistryServer: \"", m->url, "\"\nnpmAuthToken: \"" BB_CLIENTSETUP_PLACEHOLDER "\"\n"
                       "npmAlwaysAuth: true\n",
                       m->insecure ? apr_pstrcat(p, "unsafeHttpWhitelist:\n  - \"", m->hostname, "\"\n", NULL) : "",
                       NULL);
}

static const struct {
    const char *client;
    const char *where;
    snippet_fn *lines;
} clients[] = {
    { "composer", "a shell (writes ~/.config/composer/config.json and auth.json)", composer_lines },
    { "pip", "~/.config/pip/pip.conf (Windows: %APPDATA%\\pip\\pip.ini)", pip_lines },
    { "uv", "a shell, or your CI's environment", uv_lines },
    { "poetry", "a shell, in your project (Poetry 1.5 or later)", poetry_lines },
    { "npm", "~/.npmrc", npmrc_lines },
    { "yarn", "~/.yarnrc.yml (Yarn 2 or later; Yarn 1 reads the npm lines from ~/.npmrc and also wants always-auth=true"
              " there)", yarnrc_lines },
    { "pnpm", "~/.npmrc", npmrc_lines },
};

static int client_index(const char *client)
{
    int i;

    for (i = 0; client && i < (int)(sizeof(clients) / sizeof(clients[0])); i++) {
        if (!strcmp(clients[i].client, client)) {
            return i;
        }
    }
    return -1;
}

/* Fills m from url: NULL, or what is wrong with it. */
static const char *parse_mirror(apr_pool_t *p, const char *url, mirror_t *m)
{
    apr_uri_t uri;
    const char *c;

    for (c = url; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || strchr("\"'<>\\`", *c)) {
            return "the URL has a space, a quote, <, >, \\, ` or a character outside ASCII";
        }
    }
    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname || !*uri.hostname) {
        return "wants an absolute URL such as https://mirror.example.com/packages/composer/";
    }
    if (strcmp(uri.scheme, "http") && strcmp(uri.scheme, "https")) {
        return "the URL must start with https:// (or http://)";
    }
    if (uri.user || uri.password || uri.query || uri.fragment || strchr(url, '?') || strchr(url, '#')) {
        return "the URL must not contain user:password@, a query or a fragment";
    }
    m->url = url;
    m->scheme = uri.scheme;
    m->hostname = strchr(uri.hostname, ':') ? apr_pstrcat(p, "[", uri.hostname, "]", NULL) : uri.hostname;
    m->host = uri.port_str ? apr_pstrcat(p, m->hostname, ":", uri.port_str, NULL) : m->hostname;
    m->path = uri.path && *uri.path ? uri.path : "/";
    m->insecure = !strcmp(uri.scheme, "http");
    return NULL;
}

const char *bb_clientsetup_check(apr_pool_t *p, const char *client, const char *url)
{
    mirror_t m;

    if (client_index(client) < 0) {
        return apr_psprintf(p, "unknown client '%s': one of " BB_CLIENTSETUP_CLIENTS, client ? client : "");
    }
    return url ? parse_mirror(p, url, &m) : "wants a URL";
}

const bb_clientsetup_t *bb_clientsetup_make(apr_pool_t *p, const char *client, const char *url,
                                            const char *username)
{
    int i = client_index(client);
    bb_clientsetup_t *setup;
    mirror_t m;

    if (i < 0 || !url || !username || parse_mirror(p, url, &m)) {
        return NULL;
    }
    setup = apr_pcalloc(p, sizeof(*setup));
    setup->client = clients[i].client;
    setup->where = clients[i].where;
    setup->text = clients[i].lines(p, &m, username);
    return setup;
}

const char *bb_clientsetup_token_page(apr_pool_t *p, const char *bitbucket_url, const char *slug)
{
    return apr_pstrcat(p, bitbucket_url, BB_TOKEN_PAGE_PATH, bb_url_encode(p, slug), "/manage", NULL);
}

#!/bin/sh
# Which proxies in front of NGINX may name the client: one `set_real_ip_from` line for each
# address or CIDR in NGINX_TRUSTED_PROXIES (separated by commas or spaces), written to
# chat-trusted-proxies.inc beside the rendered template, which includes it.
#
# The frontend image runs this from /docker-entrypoint.d/ before NGINX starts, as it runs its
# own 20-envsubst-on-templates.sh: envsubst can put one value into the template, but NGINX
# wants a directive per address, so a list needs this step. Empty (the default) trusts no
# one: NGINX is the edge, as in compose, and the peer is the client. Behind a Kubernetes
# ingress, name the controller's addresses (its pods' CIDR): NGINX then takes the client's
# address from the X-Forwarded-For entries those proxies appended (real_ip_recursive), and an
# entry left of the first untrusted one, which the client may have written, is never used.
#
# Anything that is not an address or CIDR stops the container here, before NGINX could take
# it for a host name to look up or for configuration; NGINX then checks the numbers (an
# address like 10.0.0.300 stops it at start-up).
set -eu
set -f  # entries are words, never file name patterns

output="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}/chat-trusted-proxies.inc"
me=$(basename "$0")

fail() {
    echo "$me: NGINX_TRUSTED_PROXIES: $1" >&2
    exit 1
}

lines="# Written by $me at start-up from NGINX_TRUSTED_PROXIES."
for entry in $(printf '%s' "${NGINX_TRUSTED_PROXIES:-}" | tr ',' ' '); do
    # IPv4 is digits and dots, IPv6 has colons: never a host name (NGINX would look it up)
    # and never NGINX syntax.
    case "$entry" in
        *[!0-9A-Fa-f.:/]*) fail "not an address or CIDR: $entry" ;;
        *:*) ;;
        *[!0-9./]*) fail "not an address or CIDR: $entry" ;;
    esac
    case "$entry" in
        */0) fail "$entry trusts every address: any client could name itself" ;;
    esac
    lines="$lines
set_real_ip_from $entry;"
done

printf '%s\n' "$lines" > "$output"
# Quiet when the image's own scripts are (the entrypoint's setting).
[ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$me: wrote $output"

#!/bin/sh
# The page signs in at CHAT_OIDC_ISSUER (discovery, token and end-session requests from the
# browser), so its Content-Security-Policy must let it connect there: this writes
# chat-oidc-origin.inc beside the rendered template, which includes it. The file defines the
# NGINX variable $chat_csp_oidc_origin, which the template's policy puts right after
# `connect-src 'self'`: empty when CHAT_OIDC_ISSUER is unset or empty (the policy is then the
# one without sign-in, byte for byte), else a space and the issuer's origin, e.g.
#     https://login.microsoftonline.com/<tenant>/v2.0  ->  " https://login.microsoftonline.com"
# Only the origin: the policy admits that scheme, host and port, nothing of the path.
#
# The frontend image runs this from /docker-entrypoint.d/ before NGINX starts, as it runs
# nginx-trusted-proxies.sh: envsubst would copy any value into the template as it is, and
# this one lands inside a quoted NGINX string that becomes a header. So the issuer is checked
# here, strictly, and anything else stops the container with one line saying why:
#   - http:// or https:// (either case), then host[:port][/path]; https:// unless the host
#     is localhost or 127.0.0.1, the only hosts the service itself accepts plain http for
#     (keys fetched over plain HTTP elsewhere could be swapped on the way);
#   - the host is a DNS name (letters, digits, hyphens, dots between labels; a label neither
#     starts nor ends with a hyphen; not ending in a number) or a dotted-quad IPv4 address
#     (no leading zeros); no user:password@. An IPv6 literal is refused: a CSP source cannot
#     name one. Names outside ASCII must be written in their xn-- (punycode) form;
#   - the port, if any, is 1-65535 without leading zeros; the scheme's default is dropped, as
#     browsers (and the service) write origins;
#   - the whole value holds only letters, digits and . - _ ~ % / : , so no quote, space,
#     semicolon, comma, backslash, $, {, }, ?, # or control character (newlines included)
#     can reach NGINX's configuration or the policy.
# White space around the value is dropped first, and only white space is empty, as in the
# service. The service derives its own policy from the same variable; compose and the
# Kubernetes manifests give both containers the same value.
set -eu
set -f
LC_ALL=C
export LC_ALL

output="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}/chat-oidc-origin.inc"
me=$(basename "$0")

fail() {
    echo "$me: CHAT_OIDC_ISSUER: $1" >&2
    exit 1
}

# No file until the value has passed: NGINX does not start without one.
rm -f "$output"

issuer=${CHAT_OIDC_ISSUER:-}
while :; do
    case "$issuer" in
        [[:space:]]*) issuer=${issuer#?} ;;
        *[[:space:]]) issuer=${issuer%?} ;;
        *) break ;;
    esac
done

origin=""
if [ -n "$issuer" ]; then
    case "$issuer" in
        [Hh][Tt][Tt][Pp][Ss]://*) scheme=https ;;
        [Hh][Tt][Tt][Pp]://*) scheme=http ;;
        *) fail "not an https:// URL: $issuer" ;;
    esac
    rest=${issuer#*://}
    authority=${rest%%/*}
    case "$authority" in
        *\[*|*\]*) fail "an IPv6 address cannot be named in a Content-Security-Policy; use a host name: $issuer" ;;
    esac
    case "$issuer" in
        *[!A-Za-z0-9._~%/:-]*) fail "only letters, digits and . - _ ~ % / : may appear in it: $issuer" ;;
    esac
    case "$authority" in
        "") fail "no host: $issuer" ;;
        *:*:*) fail "not a host[:port]: $authority" ;;
        *:*)
            host=${authority%:*}
            port=${authority#*:}
            case "$port" in
                "" | 0* | *[!0-9]* | ??????*) fail "not a port: '$port'" ;;
            esac
            [ "$port" -le 65535 ] || fail "not a port: $port"
            ;;
        *)
            host=$authority
            port=""
            ;;
    esac
    host=$(printf '%s' "$host" | tr 'A-Z' 'a-z')
    case "$host" in
        "" | .* | *. | *..* | -* | *- | *.-* | *-.* | *[!a-z0-9.-]*) fail "not a host name: $host" ;;
    esac
    case "$host" in
        *[!0-9.]*)
            # A name: its last label must not be a number, which URL parsers take for IPv4.
            case "${host##*.}" in
                *[!0-9]*) ;;
                *) fail "a host name must not end in a number: $host" ;;
            esac
            ;;
        *)
            # Digits and dots only: an IPv4 address, four decimal octets.
            saved_ifs=$IFS
            IFS=.
            set -- $host  # split on the dots (no globbing: set -f)
            IFS=$saved_ifs
            [ "$#" -eq 4 ] || fail "not an IPv4 address: $host"
            for octet in "$@"; do
                case "$octet" in
                    "" | 0?* | ????*) fail "not an IPv4 address: $host" ;;
                esac
                [ "$octet" -le 255 ] || fail "not an IPv4 address: $host"
            done
            ;;
    esac
    if [ "$scheme" = http ]; then
        case "$host" in
            localhost | 127.0.0.1) ;;
            *) fail "must be an https:// URL (http:// only for localhost and 127.0.0.1): $issuer" ;;
        esac
    fi
    case "$scheme:$port" in
        https:443 | http:80) port="" ;;
    esac
    origin=" $scheme://$host${port:+:$port}"
fi

printf '%s\n' \
    "# Written by $me at start-up from CHAT_OIDC_ISSUER: what the page's" \
    "# Content-Security-Policy admits after connect-src 'self' (nothing, or the issuer's origin)." \
    'map "" $chat_csp_oidc_origin {' \
    "    default \"$origin\";" \
    '}' > "$output"
# Quiet when the image's own scripts are (the entrypoint's setting).
[ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$me: wrote $output"

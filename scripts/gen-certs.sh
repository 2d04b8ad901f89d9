#!/usr/bin/env bash
# Makes a throwaway CA and the certificates of a prep/pred pair, for local
# runs and docker-compose.tls.yml; production certificates come from your
# own CA, cert-manager or Vault.
#
#   scripts/gen-certs.sh [DIR]          # default DIR: certs
#
# Writes into DIR:
#   ca.crt, ca.key                  the CA (keep ca.key away from the services)
#   pred.crt, pred.key              pred's certificate: server and client auth
#                                   (the healthcheck presents it under mTLS)
#   prep.crt, prep.key              prep's HTTPS certificate
#   prep-client.crt, prep-client.key  the client certificate prep presents to pred
# Server certificates name localhost, 127.0.0.1 and the compose service
# (pred, prep); EXTRA_SANS adds more, e.g. EXTRA_SANS=DNS:pred.example,IP:10.0.0.5.
# Keys are readable by all (0644) so that the containers' non-root user can
# read the mounted files: throwaway certificates only. DAYS sets the validity
# (default 365). Running it again replaces every certificate but the CA, so
# it also rotates them (the services re-read the files within a second).
set -euo pipefail

dir=${1:-certs}
days=${DAYS:-365}
extra=${EXTRA_SANS:+,$EXTRA_SANS}
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ ! -f $dir/ca.crt || ! -f $dir/ca.key ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days "$days" -subj "/CN=prepred throwaway CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  mv "$tmp/ca.key" "$dir/ca.key"
  mv "$tmp/ca.crt" "$dir/ca.crt"
  chmod 600 "$dir/ca.key"
fi

# issue NAME EXTENDED_KEY_USAGE [SANS]: writes NAME.crt and NAME.key, each
# by a rename, so a service re-reading them never sees half a file.
issue() {
  local name=$1 eku=$2 sans=${3:-}
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$tmp/$name.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/$name.key" -out "$tmp/$name.csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -extfile "$tmp/$name.ext" -out "$tmp/$name.crt" 2>/dev/null
  chmod 644 "$tmp/$name.key" "$tmp/$name.crt"
  mv "$tmp/$name.key" "$dir/$name.key"
  mv "$tmp/$name.crt" "$dir/$name.crt"
}

issue pred serverAuth,clientAuth "DNS:pred,DNS:localhost,IP:127.0.0.1$extra"
issue prep serverAuth "DNS:prep,DNS:localhost,IP:127.0.0.1$extra"
issue prep-client clientAuth
echo "certificates in $dir: ca.crt pred.crt prep.crt prep-client.crt (and keys)"

#!/usr/bin/env bash
# make-tls.sh DIR HOST: a throwaway CA (DIR/ca.pem) and a certificate for
# HOST only, with no IP SAN (DIR/server.pem, DIR/server.key), for a sandbox.
set -euo pipefail
d=$1
host=$2
mkdir -p "$d"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=qiwi_kassa test CA" \
	-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" \
	-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\n' "$host" >"$d/ext.cnf"
openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
	-CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
chmod 644 "$d/ca.pem" "$d/server.pem"

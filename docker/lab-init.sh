#!/bin/sh
# One-shot init of the compose lab: creates the control plane's secret (once, kept in the
# control-plane-state volume) and mints every workload's bootstrap token, the admin token
# and its SHA-256 into the bootstrap volume. Nothing secret is baked into the image.
set -eu

STATE=/var/lib/meshlab
BOOTSTRAP=/var/run/meshlab
ADMIN=/var/run/meshlab-admin
SECRET="$STATE/secret"

mkdir -p "$STATE" "$BOOTSTRAP/tokens" "$ADMIN"
if [ ! -s "$SECRET" ]; then
    umask 077
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SECRET"
    umask 022
fi

# workload:service-account, as bookinfo serve names them.
for pair in productpage-v1:bookinfo-productpage details-v1:bookinfo-details \
    reviews-v1:bookinfo-reviews reviews-v2:bookinfo-reviews reviews-v3:bookinfo-reviews \
    ratings-v1:bookinfo-ratings sleep:sleep httpbin:httpbin tcp-echo:tcp-echo outsider:outsider; do
    workload="${pair%%:*}"
    account="${pair#*:}"
    meshctl bootstrap-token --secret-file "$SECRET" --namespace default \
        --service-account "$account" > "$BOOTSTRAP/tokens/$workload"
done
meshctl admin-token --secret-file "$SECRET" > "$ADMIN/admin-token"
meshctl admin-token --secret-file "$SECRET" --sha256 > "$BOOTSTRAP/admin-token.sha256"
echo "meshlab tokens ready"

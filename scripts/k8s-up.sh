#!/usr/bin/env bash
# Starts a one-node Kubernetes cluster on this machine and prints the path of
# its admin kubeconfig:
#
#   export KUBECONFIG="$(scripts/k8s-up.sh)"
#
# The parts: Debian's etcd, containerd, runc and CNI plugins (installed by
# scripts/install-deps.sh k8s when missing), and kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl and
# CoreDNS built from the Go module proxy (scripts/install-k8s.sh, cached in
# .cache/tools/k8s). Each runs as a process of this machine with its state,
# sockets and logs under $K8S_STATE (default .cache/k8s): its own
# containerd (socket, root and state directories apart from any other
# containerd's), certificates made here at the first start, pods on the
# bridge $BRIDGE with addresses in $POD_CIDR and no route off the machine,
# CoreDNS on the bridge's address serving cluster.local only, services in
# $SERVICE_CIDR. The sandbox image is built here (scripts/tools/k8s/pause); nothing
# is pulled. scripts/k8s-down.sh removes all of it.
#
# Idempotent: running components are kept, missing ones started. When one
# does not come up, it exits non-zero with that component's log tail.
# Needs root (containerd, kubelet, iptables).
set -euo pipefail
# shellcheck source=k8s/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s/env.sh"

# Deadlines, in seconds, for one component to answer once started.
START_S=120

say() { echo "k8s-up: $*" >&2; }
fail() { say "$*"; exit 1; }
[[ $EUID -eq 0 ]] || fail "needs root (containerd, kubelet, iptables)"

"$root/scripts/install-deps.sh" k8s
"$root/scripts/install-k8s.sh" >/dev/null
export PATH="$K8S_BIN:$PATH"

mkdir -p "$K8S_STATE"/{run,logs,pki,etcd,cni/net.d,cni/ipam,kubelet,containerd}
exec 9>"$K8S_STATE/run/lock"
flock -w 600 9 || fail "another k8s-up or k8s-down holds $K8S_STATE/run/lock"

# put writes stdin to file $1 unless it holds that already: a component
# watching its file (kube-proxy exits when it changes) sees no change.
put() {
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else chmod 0644 "$tmp" && mv "$tmp" "$1"; fi
}

if [[ ! -f "$K8S_STATE/run/host-dirs.created" ]]; then
  for d in "${HOST_DIRS[@]}"; do [[ -e "$d" ]] || echo "$d"; done >"$K8S_STATE/run/host-dirs.created"
fi

# ---- network: ranges free, bridge, forwarding rules ----
# overlaps reports whether CIDR $1 shares addresses with a route of this
# machine that is not the run's own bridge (the default route aside).
overlaps() {
  python3 - "$1" "$BRIDGE" <<'PY'
import ipaddress, subprocess, sys
net, bridge = ipaddress.ip_network(sys.argv[1]), sys.argv[2]
for line in subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout.splitlines():
    f = line.split()
    if f[0] in ("local", "broadcast", "unreachable", "prohibit", "blackhole", "throw"):
        f = f[1:]
    if not f or f[0] == "default" or ("dev" in f and f[f.index("dev") + 1] == bridge):
        continue
    try:
        other = ipaddress.ip_network(f[0], strict=False)
    except ValueError:
        continue
    if net.overlaps(other):
        print(line)
        sys.exit(0)
sys.exit(1)
PY
}
for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
  if clash="$(overlaps "$cidr")"; then
    fail "$cidr overlaps a route of this machine ($clash); pick other ranges with K8S_POD_CIDR, K8S_NODE_IP, K8S_SERVICE_CIDR and K8S_API_SERVICE_IP"
  fi
done
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add name "$BRIDGE" type bridge
fi
ip -4 addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Routing between the bridge and itself (pod -> service address -> pod);
# the previous setting is put back by k8s-down.sh.
[[ -f "$K8S_STATE/run/ip_forward.before" ]] || cat /proc/sys/net/ipv4/ip_forward >"$K8S_STATE/run/ip_forward.before"
echo 1 >/proc/sys/net/ipv4/ip_forward
# Bridged pod traffic passes iptables, where kube-proxy translates service addresses.
echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
# Forwarded traffic of the pods stays on their bridge: nothing from the pod
# range leaves through another interface and nothing from another interface
# reaches it. (The host itself reaches the pods without forwarding.)
iptables -w -N "$FW_CHAIN" 2>/dev/null || iptables -w -F "$FW_CHAIN"
iptables -w -A "$FW_CHAIN" -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
iptables -w -A "$FW_CHAIN" -s "$POD_CIDR" -j DROP
iptables -w -A "$FW_CHAIN" -d "$POD_CIDR" -j DROP
iptables -w -C FORWARD -j "$FW_CHAIN" 2>/dev/null || iptables -w -I FORWARD 1 -j "$FW_CHAIN"

# ---- certificates ----
pki="$K8S_STATE/pki"
# cert makes $pki/$1.{crt,key} signed by the cluster CA: subject $2, SANs $3
# (openssl subjectAltName syntax, may be empty), extended key usage $4.
cert() {
  local name="$1" subj="$2" sans="$3" eku="$4"
  [[ -s "$pki/$name.crt" ]] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}
if [[ ! -s "$pki/ca.crt" ]]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=prepred-k8s-ca" -days 30 -out "$pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
[[ -s "$pki/sa.key" ]] || {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}
cert apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN" serverAuth
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "" clientAuth
cert admin "/O=system:masters/CN=prepred-admin" "" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" "" clientAuth
cert scheduler "/CN=system:kube-scheduler" "" clientAuth
cert kube-proxy "/CN=system:kube-proxy" "" clientAuth
cert coredns "/CN=system:coredns" "" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "" clientAuth
cert kubelet-serving "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME" serverAuth

# kubeconfig writes the kubeconfig $K8S_STATE/$1.kubeconfig for client certificate $1.
kubeconfig() {
  put "$K8S_STATE/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: prepred
    cluster:
      server: https://127.0.0.1:$APISERVER_PORT
      certificate-authority: $pki/ca.crt
users:
  - name: $1
    user:
      client-certificate: $pki/$1.crt
      client-key: $pki/$1.key
contexts:
  - name: prepred
    context: {cluster: prepred, user: $1}
current-context: prepred
KC
}
for c in admin controller-manager scheduler kube-proxy coredns kubelet; do kubeconfig "$c"; done

# ---- starting and waiting ----
# start runs component $1 as "$@" (after the name) in the background, in a
# session of its own, unless it runs already.
start() {
  local name="$1"
  shift
  running "$name" && return 0
  say "starting $name"
  # Not holding the lock (fd 9) of this script.
  setsid "$@" </dev/null >>"$K8S_STATE/logs/$name.log" 2>&1 9>&- &
  echo $! >"$(pidfile "$name")"
}
# await waits until the check "$@" (after the name) passes for component $1,
# or fails with the tail of its log when it exits or START_S pass.
await() {
  local name="$1" deadline=$((SECONDS + START_S))
  shift
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      tail -25 "$K8S_STATE/logs/$name.log" >&2
      fail "$name exited (log: $K8S_STATE/logs/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -25 "$K8S_STATE/logs/$name.log" >&2
      fail "$name did not come up in ${START_S}s (log: $K8S_STATE/logs/$name.log)"
    fi
    sleep 0.5
  done
}
kubectl_admin() { kubectl --kubeconfig "$K8S_KUBECONFIG" --request-timeout=10s "$@"; }
https_ok() { # url cert
  curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/$2.crt" --key "$pki/$2.key" "$1"
}

# ---- etcd ----
start etcd etcd --name prepred --data-dir "$K8S_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "prepred=http://127.0.0.1:$ETCD_PEER_PORT" \
  --quota-backend-bytes 2147483648
await etcd curl -fsS --max-time 5 "http://127.0.0.1:$ETCD_PORT/health"

# ---- containerd ----
put "$K8S_STATE/containerd/config.toml" <<TOML
# containerd of the one-node test cluster: its own socket, root and state.
version = 2
root = "$K8S_STATE/containerd/root"
state = "$K8S_STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$K8S_STATE/run/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$K8S_STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # The pods' network namespaces under the state, not in /run/netns.
  netns_mounts_under_state_dir = true
  # No OOM score below containerd's own: a process here may not lower its
  # score (the kubelet asks -998 for sandboxes, and runc fails on it).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${K8S_RUNC:-$(command -v runc)}"
        # runc's state apart from any other containerd's k8s.io namespace.
        Root = "$K8S_STATE/runc"
        # No systemd here: the kubelet's cgroup driver is cgroupfs too.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_STATE/cni/net.d"
TOML
put "$K8S_STATE/cni/net.d/10-prepred.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "prepred-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$K8S_STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    }
  ]
}
JSON
start containerd containerd --config "$K8S_STATE/containerd/config.toml"
await containerd ctr --address "$CONTAINERD_SOCK" version

# The sandbox image: scripts/tools/k8s/pause in an OCI image archive, imported.
if ! ctr_k8s images check "name==$PAUSE_IMAGE" 2>/dev/null | grep -q complete; then
  say "building $PAUSE_IMAGE"
  img="$(mktemp -d)"
  (cd "$root/scripts/tools/k8s" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$img/rootfs/pause" ./pause)
  mkdir -p "$img/oci/blobs/sha256"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$img/rootfs" -cf "$img/layer.tar" pause
  # blob stores file $1 by its digest and prints "digest size".
  blob() {
    local d
    d="$(sha256sum "$1" | cut -d' ' -f1)"
    cp "$1" "$img/oci/blobs/sha256/$d"
    echo "sha256:$d $(stat -c %s "$1")"
  }
  read -r layer_digest layer_size < <(blob "$img/layer.tar")
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$layer_digest" >"$img/config.json"
  read -r config_digest config_size < <(blob "$img/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$img/manifest.json"
  read -r manifest_digest manifest_size < <(blob "$img/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$PAUSE_IMAGE" "${PAUSE_IMAGE##*:}" >"$img/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$img/oci/oci-layout"
  tar -C "$img/oci" -cf "$img/pause.tar" .
  ctr_k8s images import "$img/pause.tar" >/dev/null
  rm -rf "$img"
fi

# ---- control plane ----
start kube-apiserver kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --endpoint-reconciler-type none \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --profiling=false
await kube-apiserver https_ok "https://127.0.0.1:$APISERVER_PORT/readyz" admin

# CoreDNS reads services, endpoint slices and namespaces.
kubectl_admin apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
  - apiGroups: [""]
    resources: [services, namespaces, pods]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
YAML

start kube-controller-manager kube-controller-manager \
  --kubeconfig "$K8S_STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$K8S_STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$K8S_STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" \
  --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
  --flex-volume-plugin-dir "$K8S_STATE/kubelet/volume-plugins" \
  --profiling=false
start kube-scheduler kube-scheduler \
  --kubeconfig "$K8S_STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$K8S_STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$K8S_STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false
# Their serving certificates are their own, self-signed; /healthz is open.
await kube-controller-manager curl -fsSk --max-time 5 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
await kube-scheduler curl -fsSk --max-time 5 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
# Pods can be created once the service account controller has made the
# namespaces' default accounts.
await kube-controller-manager kubectl_admin -n default get serviceaccount default

# ---- node ----
# Pods get no resolver of the machine: CoreDNS answers cluster names only.
: >"$K8S_STATE/kubelet/resolv.conf"
put "$K8S_STATE/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
# Only holders of a certificate of the cluster CA get this far.
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# No systemd on this machine; containerd is configured alike.
cgroupDriver: cgroupfs
# This machine has cgroup v1 only.
failCgroupV1: false
failSwapOn: false
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $K8S_STATE/kubelet/resolv.conf
# The imported images are all there is: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
serializeImagePulls: false
staticPodPath: ""
podLogsDir: $K8S_STATE/kubelet/pod-logs
volumePluginDir: $K8S_STATE/kubelet/volume-plugins
YAML
# The kubelet sets kernel tunables (protectKernelDefaults is off);
# k8s-down.sh puts back what they were before its first start.
[[ -f "$K8S_STATE/run/sysctl.before" ]] || for k in "${KUBELET_SYSCTLS[@]}"; do
  echo "$k $(cat "/proc/sys/${k//.//}")"
done >"$K8S_STATE/run/sysctl.before"
start kubelet kubelet --config "$K8S_STATE/kubelet/config.yaml" \
  --kubeconfig "$K8S_STATE/kubelet.kubeconfig" --root-dir "$K8S_STATE/kubelet/root" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
await kubelet curl -fsS --max-time 5 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
node_ready() {
  [[ "$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
await kubelet node_ready

put "$K8S_STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $K8S_STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
# Node ports only on the node's bridge address, none on loopback (that
# would need route_localnet) or on the machine's other interfaces.
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
# Leave the machine's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy kube-proxy --config "$K8S_STATE/kube-proxy.yaml"
await kube-proxy curl -fsS --max-time 5 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"

put "$K8S_STATE/Corefile" <<COREFILE
# Cluster names only; there is nothing to forward other names to.
$CLUSTER_DOMAIN:53 in-addr.arpa:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes $CLUSTER_DOMAIN in-addr.arpa {
        kubeconfig $K8S_STATE/coredns.kubeconfig prepred
        pods insecure
        ttl 5
    }
    cache 5
    loadbalance
}
.:53 {
    bind $NODE_IP
    errors
}
COREFILE
start coredns coredns -conf "$K8S_STATE/Corefile"
await coredns curl -fsS --max-time 5 "http://127.0.0.1:$COREDNS_READY_PORT/ready"

say "cluster up: $("$K8S_BIN/kubectl" --kubeconfig "$K8S_KUBECONFIG" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), node $NODE_NAME"
echo "$K8S_KUBECONFIG"

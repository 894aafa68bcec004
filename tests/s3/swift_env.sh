#!/usr/bin/env bash
# A throwaway S3 endpoint for the S3 tests: OpenStack Swift (Debian 12 packages) with its s3api
# middleware, on localhost, configured and run entirely under one directory.
#
#   swift_env.sh install          installs the Swift packages when missing (no service is started)
#   swift_env.sh start DIR [PORT] writes DIR's configuration, starts the servers, waits until an
#                                 authenticated S3 request answers, and prints lines to eval:
#                                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
#                                 AWS_ENDPOINT_URL (path-style: the bucket goes in the path)
#   swift_env.sh stop DIR         stops every process start started (pid files) and removes DIR's
#                                 state; idempotent
#   swift_env.sh down DIR SERVER  stops one server (account, container, object) of a running DIR, so
#                                 that the proxy answers 503 (a real outage for the retry tests)
#   swift_env.sh up DIR SERVER    starts it again
# start is idempotent: when DIR's servers already answer, it only prints the lines again.
# Proxy on PORT (default 18080); account, container and object servers on PORT+1..PORT+3,
# memcached on PORT+4 (so two instances need ports at least 5 apart).
#
# Tuned as one would deploy Swift for large objects on one small machine (the S3 store's packs are
# 16 MiB; the servers share 2 cores with asrimg in bench/store.sh), each setting kept for what it
# measurably saved (Swift's CPU seconds per byte moved, PUT and GET of 16 MiB objects with 2 in
# flight, and in bench/store.sh's S3 backup and restore):
# - memcached behind the proxy (Debian's memcached, started and stopped here like the servers):
#   without it every object request made the proxy HEAD the account and the container server
#   (their info is cached in memcached for 60 s): the account and container servers took 18% of
#   Swift's CPU in a restore (with the polling below), now almost none.
# - workers = 0: each server serves in its one process. With workers = 1 a parent process waits
#   for its worker in eventlet's waitpid loop, polling every 10 ms: 0.5 CPU seconds every 10 s
#   for the four servers while idle, taken from asrimg on a 2-core machine. One process each is
#   still one core each, as before.
# - the proxy's object_chunk_size and client_chunk_size (below).
# Left as they are: one replica, the objects on the given directory's disk with Swift's fsync on
# every PUT, and access logging below WARNING (it is not written; no syslog runs).
#
# Facts found (Swift 2.30.1, curl 7.88.1; tests/s3/s3_env_test.sh checks each one):
# - Auth: tempauth maps S3 credentials: the access key is "account:user" ("asrimg:ci"), the secret
#   is the tempauth key. The colon means curl's `--user KEY:SECRET` splits it wrongly: give user
#   and secret apart (CURLOPT_USERNAME/CURLOPT_PASSWORD, or netrc as here). tempauth needs a
#   cache object (the memcache middleware); s3api checks the signature on every request.
# - libcurl 7.88's SigV4 sends no x-amz-content-sha256 and s3api refuses requests without it
#   (400): send the body's SHA-256 or UNSIGNED-PAYLOAD (both pass; a wrong hash: 400 BadDigest).
# - libcurl 7.88 signs the query as written; s3api canonicalizes it: write it sorted by name and
#   percent-encoded (only A-Za-z0-9-._~ bare), else 403.
# - PUT with If-None-Match (conditional create): 501 NotImplemented, also for an absent key.
# - ListObjectsV2 prefix/max-keys/continuation-token work; bucket names need >= 3 characters.
#
# Measured (2-core machine; s3_env_test.sh --bench): with the settings above (load average ~2,
# one run): start 6.4 s, stop 2.7 s; 4 KiB objects, 8 in flight from one curl: PUT 155/s, GET
# 335/s; one GET at a time with curl start 33 ms; 64 MiB PUT 204 MiB/s, GET 265 MiB/s. Before
# them (no memcached, workers = 1, 64 KiB proxy chunks; load average ~5, two runs): start 7.5-9 s,
# stop 3-5 s; PUT 54-66/s, GET 87-105/s; 60-115 ms; 64 MiB PUT 156-160 MiB/s, GET 135-147 MiB/s.
set -euo pipefail

pkgs=(swift swift-proxy swift-account swift-container swift-object python3-swift memcached)
region=us-east-1
account=asrimg
user=ci
key=asrimg-ci-secret

die() { echo "swift_env: error: $*" >&2; exit 1; }

install_pkgs() {
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages (${missing[*]}): run as root or install them"
  # The packages' maintainer scripts call invoke-rc.d to start their daemons (and rsyslog); a
  # policy-rc.d answering 101 forbids that, so nothing starts and systemd is not needed.
  local policy=/usr/sbin/policy-rc.d added=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  echo "installing: ${missing[*]}" >&2
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ -n "$added" ] && rm -f "$policy"
  [ $rc -eq 0 ] || die "apt-get install failed ($rc)"
}

servers=(memcached account container object proxy)

# launch DIR SERVER: starts one server in a session of its own (stop kills the whole process group:
# the server and its workers), its pid in DIR/run/SERVER.pid
launch() {
  local dir=$1 s=$2 port
  port=$(cat "$dir/run/port")
  if [ "$s" = memcached ]; then
    # TCP only (-U 0), one thread and 64 MiB: it holds a few account, container and token entries
    setsid memcached -l 127.0.0.1 -p $((port + 4)) -U 0 -t 1 -m 64 -u "$(id -un)" </dev/null >>"$dir/log/$s.log" 2>&1 &
  else
    setsid "swift-$s-server" "$dir/etc/$s-server.conf" -v </dev/null >>"$dir/log/$s.log" 2>&1 &
  fi
  echo $! >"$dir/run/$s.pid"
}

# s3 env lines for eval
print_env() {
  local port=$1
  printf "export AWS_ACCESS_KEY_ID='%s'\n" "$account:$user"
  printf "export AWS_SECRET_ACCESS_KEY='%s'\n" "$key"
  printf "export AWS_REGION='%s'\n" "$region"
  printf "export AWS_ENDPOINT_URL='http://127.0.0.1:%s'\n" "$port"
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# An authenticated ListBuckets answering 200 proves the proxy, tempauth, s3api and the account
# server are all up.
answers() {
  local port=$1 dir=$2
  curl -sf -o /dev/null --max-time 5 --netrc-file "$dir/netrc" --aws-sigv4 "aws:amz:$region:s3" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$port/"
}

write_conf() {
  local dir=$1 port=$2 runas
  runas=$(id -un)
  mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/run" "$dir/log" "$dir/cache"
  cat >"$dir/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = asrimg-test
swift_hash_path_prefix = asrimg-test
[storage-policy:0]
name = Policy-0
default = yes
EOF
  local common="[DEFAULT]
bind_ip = 127.0.0.1
user = $runas
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
workers = 0
log_name = SERVER
log_level = WARNING
log_address = $dir/log/no-syslog
"
  local i=1 s
  for s in account container object; do
    { printf '%s' "${common//SERVER/$s}"
      printf 'bind_port = %s\n' $((port + i))
      printf '[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' "$s" "$s" "$s"
      printf 'recon_cache_path = %s/cache\n' "$dir"
    } >"$dir/etc/$s-server.conf"
    i=$((i + 1))
  done
  { printf '%s' "${common//SERVER/proxy}"
    printf 'bind_port = %s\n' "$port"
    cat <<EOF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# the retry tests stop and restart a server: without this, 10 errors would keep the proxy from
# trying it again for 60 s
error_suppression_limit = 100000
# Bodies pass through the proxy in pieces of this size (default 64 KiB): at 256 KiB its CPU per
# byte moved fell by ~20% (PUT and GET of 16 MiB objects, 2 in flight); 512 KiB and 1 MiB cost
# more than the default (eventlet writes a large piece to the socket in many partial sends).
# The object server's disk_chunk_size and network_chunk_size stay at 64 KiB for the same reason:
# 1 MiB made its GETs ~25% dearer and PUTs no cheaper.
object_chunk_size = 262144
client_chunk_size = 262144
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((port + 4))
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = $region
[filter:tempauth]
use = egg:swift#tempauth
user_${account}_${user} = $key .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
  } >"$dir/etc/proxy-server.conf"
  printf 'machine 127.0.0.1 login %s password %s\n' "$account:$user" "$key" >"$dir/netrc"
  chmod 600 "$dir/netrc"
}

# One ring per server type (partition power 4, one replica) on the directory "device" d1. Built
# through swift-ring-builder's library in one interpreter: nine swift-ring-builder runs took ~17 s
# on a loaded 2-core machine, this takes ~2 s. Rebuilt only when the ports change.
build_rings() {
  local dir=$1 port=$2
  [ "$(cat "$dir/etc/rings.port" 2>/dev/null)" = "$port" ] && [ -s "$dir/etc/object.ring.gz" ] && return 0
  /usr/bin/python3 - "$dir/etc" "$port" <<'PY' || die "could not build the rings"
import sys
from swift.common.ring import RingBuilder
etc, port = sys.argv[1], int(sys.argv[2])
for i, kind in enumerate(("account", "container", "object"), 1):
    b = RingBuilder(4, 1, 0)
    b.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": port + i, "device": "d1", "weight": 1})
    b.rebalance()
    b.get_ring().save("%s/%s.ring.gz" % (etc, kind))
PY
  echo "$port" >"$dir/etc/rings.port"
}

start() {
  local dir=${1:?usage: swift_env.sh start DIR [PORT]} port=${2:-18080} s
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -s "$dir/run/port" ] && [ "$(cat "$dir/run/port")" = "$port" ] && answers "$port" "$dir"; then
    print_env "$port"
    return 0
  fi
  stop_servers "$dir"
  install_pkgs
  # Another server on one of the ports would answer for ours (or keep ours from binding): said as
  # that, not as a Swift that misbehaves.
  local p
  for p in $(seq "$port" $((port + 4))); do
    ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || die "port $p is in use: give another PORT"
  done
  write_conf "$dir" "$port"
  build_rings "$dir" "$port"
  echo "$port" >"$dir/run/port"
  rm -f "$dir"/log/*.log
  for s in "${servers[@]}"; do launch "$dir" "$s"; done

  for _ in $(seq 1 200); do
    answers "$port" "$dir" && { print_env "$port"; return 0; }
    for s in "${servers[@]}"; do
      alive "$dir/run/$s.pid" || { tail -n 20 "$dir/log/$s.log" >&2; stop_servers "$dir"; die "swift-$s-server exited"; }
    done
    sleep 0.1
  done
  tail -n 20 "$dir"/log/*.log >&2
  stop_servers "$dir"
  die "Swift on port $port did not answer within 20 s"
}

stop_servers() {
  local dir=$1 s pf pid
  for s in "${servers[@]}"; do
    pf="$dir/run/$s.pid"
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for s in "${servers[@]}"; do
    pf="$dir/run/$s.pid"
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    for _ in $(seq 1 50); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pf"
  done
}

# down DIR SERVER / up DIR SERVER
server_down() {
  local dir=${1:?} s=${2:?} pid
  pid=$(cat "$dir/run/$s.pid")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 -- "-$pid" 2>/dev/null || { rm -f "$dir/run/$s.pid"; return 0; }
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$dir/run/$s.pid"
}

server_up() {
  local dir=${1:?} s=${2:?}
  alive "$dir/run/$s.pid" && return 0
  launch "$dir" "$s"
}

stop() {
  local dir=${1:?usage: swift_env.sh stop DIR}
  [ -d "$dir" ] || return 0
  stop_servers "$dir"
  rm -rf "${dir:?}/etc" "$dir/srv" "$dir/run" "$dir/log" "$dir/cache" "$dir/netrc"
  rmdir "$dir" 2>/dev/null || true
}

case "${1:-}" in
  install) install_pkgs ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  down) shift; server_down "$@" ;;
  up) shift; server_up "$@" ;;
  *) echo "usage: $0 install | start DIR [PORT] | stop DIR | down DIR SERVER | up DIR SERVER" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs the servers the C adapters are tested and measured against, each on a free loopback port,
# from DIR, until this script is killed (it stops them then):
#   redis-server, nginx (DIR/www: small.txt, "hello from nginx\n", and blob.bin, 1 MiB whose byte
#   i is (i * 7 + 3) & 0xff), dnsmasq (hostN.evloop.test -> 10.0.N/250.N%250+1 for N < 1000,
#   NXDOMAIN for any other name under evloop.test).
# Once all three answer, it writes DIR/ports (redis_port=, http_port=, dns_port=, closed_port=,
# the last a port nothing listens on) for a shell to source.
#   tests/c/adapters/servers.sh DIR &
set -euo pipefail
work=$1
export PATH="$PATH:/usr/sbin"
for tool in redis-server nginx dnsmasq ss; do
    command -v "$tool" >/dev/null || { echo "adapter servers: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT
trap stop EXIT
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_port() { # tcp|udp PORT
    for _ in $(seq 1 200); do
        if [ "$1" = tcp ]; then
            (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        else
            ss -Hlun "sport = :$2" | grep -q . && return 0
        fi
        sleep 0.05
    done
    echo "adapter servers: nothing came up on $1 port $2" >&2
    exit 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --daemonize no --logfile "$work/redis.log" &
pids+=($!)

http_port=$(free_port)
mkdir -p "$work/www" "$work/nginx-tmp"
printf 'hello from nginx\n' > "$work/www/small.txt"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 0xFF for i in range(1 << 20)))' \
    > "$work/www/blob.bin"
cat > "$work/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx-tmp;
    proxy_temp_path $work/nginx-tmp;
    fastcgi_temp_path $work/nginx-tmp;
    uwsgi_temp_path $work/nginx-tmp;
    scgi_temp_path $work/nginx-tmp;
    server { listen 127.0.0.1:$http_port; root $work/www; }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" &
pids+=($!)

dns_port=$(free_port)
python3 -c 'for i in range(1000): print(f"10.0.{i // 250}.{i % 250 + 1} host{i}.evloop.test")' > "$work/hosts"
user=()
[ "$(id -u)" -ne 0 ] || user=(--user=root)
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$work/hosts" \
    --local=/evloop.test/ --listen-address=127.0.0.1 --bind-interfaces --port="$dns_port" \
    --pid-file="$work/dnsmasq.pid" --cache-size=0 --log-facility="$work/dnsmasq.log" "${user[@]}" &
pids+=($!)

wait_for_port tcp "$redis_port"
wait_for_port tcp "$http_port"
wait_for_port udp "$dns_port"
printf 'redis_port=%s\nhttp_port=%s\ndns_port=%s\nclosed_port=%s\n' "$redis_port" "$http_port" \
    "$dns_port" "$(free_port)" > "$work/ports.tmp"
mv "$work/ports.tmp" "$work/ports"
wait

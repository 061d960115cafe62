#!/bin/sh
# Prints lighttpd's var.xintu_app_servers: one entry per address NAME resolves to when lighttpd
# starts (lighttpd.conf includes this with include_shell). lighttpd resolves a host name to its
# first address only, so a name behind several gateway instances would pin one of them; listed
# one by one, round-robin spreads over all and a dead one is skipped. As with nginx, restart
# lighttpd after scaling the gateway.
#   app-servers.sh NAME PORT
set -eu
name=$1 port=$2
addrs=$(getent ahostsv4 "$name" | awk '{ print $1 }' | sort -u)
# Not resolvable yet: the name itself, which lighttpd resolves again when it connects.
[ -n "$addrs" ] || addrs=$name
echo 'var.xintu_app_servers = ('
for addr in $addrs; do
  echo "  ( \"host\" => \"$addr\", \"port\" => $port, \"connect-timeout\" => 3, \"write-timeout\" => 30, \"read-timeout\" => 30 ),"
done
echo ')'

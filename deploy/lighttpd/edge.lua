-- Runs (mod_magnet) for every request lighttpd proxies to the app servers.
-- The gateway trusts X-Real-IP only because this edge overwrites it: whatever a client sent is
-- replaced by the address of the TCP peer. The request id is fresh too, so the one in lighttpd's
-- access log is the one the gateway and every service log for this request.
local r = lighty.r
r.req_header["X-Real-IP"] = r.req_attr["request.remote-addr"]
local rand = lighty.c.rand
r.req_header["X-Request-Id"] = string.format("%08x%08x%08x%08x",
  rand() & 0xffffffff, rand() & 0xffffffff, rand() & 0xffffffff, rand() & 0xffffffff)
return 0

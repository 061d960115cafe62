-- Runs (mod_magnet, at the start of each response) on the paths lighttpd proxies to the app
-- servers. An answer of lighttpd's own making there means no app server answered: lighttpd says
-- 500 when one closed the connection after the request was sent (an instance killed mid-request)
-- and 503 when none could be reached, on an HTML page. Clients get what nginx gives them instead:
-- the edge's JSON error with the request id, 502 upstream_unavailable (504 upstream_timeout for
-- a read timeout), so an unavailable instance never reads as an internal error. Every answer of
-- the gateway carries X-Request-Id and passes unchanged.
local r = lighty.r
local status = r.req_item.http_status
if status < 500 or r.resp_header["X-Request-Id"] ~= nil then
  return 0
end
local id = r.req_header["X-Request-Id"] or ""
local code, message, answer = "upstream_unavailable", "the service is unavailable, try again", 502
if status == 504 then
  code, message, answer = "upstream_timeout", "the service did not answer in time", 504
end
r.resp_header["Content-Type"] = "application/json"
r.resp_header["X-Request-Id"] = id
r.resp_body:set({ '{"error":{"code":"', code, '","message":"', message, '","request_id":"', id, '"}}\n' })
return answer

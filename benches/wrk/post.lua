-- POST the body in $WRK_BODY_FILE; optional per-connection pause of $WRK_DELAY_MS after each
-- response (used to run below saturation).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end
-- No `response` callback: wrk counts statuses ≥ 400 in `summary.errors.status` on its own, and
-- with the callback it builds a Lua table of every response's headers, which made the client
-- (the bottleneck against hello-world) slower on servers that send more headers.
function done(summary, latency, requests)
  io.write(string.format("non200 %d\n", summary.errors.status))
end

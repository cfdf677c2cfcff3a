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
local errors = 0
function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non200 %d\n", summary.errors.status))
end

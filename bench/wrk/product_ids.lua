-- wrk script: GET /api/products/{id}, cycling through the ids listed (one a line) in the file
-- named by the first script argument:
--   wrk -t2 -c32 -d15s --latency -s bench/wrk/product_ids.lua http://127.0.0.1:8081 -- ids.txt
local ids = {}
local next_index = 0

function init(args)
  local f = assert(io.open(args[1], "r"), "cannot open the id file " .. tostring(args[1]))
  for line in f:lines() do
    if #line > 0 then ids[#ids + 1] = line end
  end
  f:close()
  assert(#ids > 0, "the id file lists no ids")
  -- Threads start at different places in the list.
  next_index = math.random(#ids)
end

function request()
  next_index = next_index % #ids + 1
  return wrk.format("GET", "/api/products/" .. ids[next_index])
end

-- wrk script for bench/suite_serve.sh: POSTs the bodies of the file named
-- by $BODIES (one per line) in turn (or of the files listed in $FILES), with $CTYPE (default application/json)
-- to $URLPATH (default /v1/query), and prints one JSON line of results.
local bodies = {}
local i = 0
local path = os.getenv("URLPATH") or "/v1/query"
local ctype = os.getenv("CTYPE") or "application/json"
local auth = os.getenv("AUTH")

-- $FILES instead: a file listing paths, each file's bytes one body
function init(args)
	math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
	if os.getenv("GEN") then
		return
	end
	local files = os.getenv("FILES")
	if files then
		for p in io.lines(files) do
			local f = assert(io.open(p, "rb"))
			bodies[#bodies + 1] = f:read("*a")
			f:close()
		end
	else
		for line in io.lines(os.getenv("BODIES")) do
			bodies[#bodies + 1] = line
		end
	end
	i = math.random(#bodies)
end

-- $GEN=ppm instead: every body a new 32x32 noise image (distinct writes)
local gen = os.getenv("GEN")

local function noise_ppm()
	local t = { "P6\n32 32\n255\n" }
	for k = 1, 32 * 32 * 3 do
		t[#t + 1] = string.char(math.random(0, 255))
	end
	return table.concat(t)
end

function request()
	local h = { ["Content-Type"] = ctype }
	if auth then h["Authorization"] = auth end
	if gen == "ppm" then
		return wrk.format("POST", path, h, noise_ppm())
	end
	i = i % #bodies + 1
	return wrk.format("POST", path, h, bodies[i])
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'RESULT {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
		'"non2xx": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
		summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
		latency:percentile(99) / 1e3, latency.max / 1e3, e.status, e.connect, e.read, e.write,
		e.timeout))
end

-- wrk script of scripts/bench: sends the requests of a spec file, weighted
-- round robin, and prints one machine-readable result line at the end.
--
-- BENCH_SPEC names the spec file. Blocks are separated by a line "---":
--
--   POST /auth/login 3          method, path, weight
--   content-type: application/json
--                               (blank line: headers end)
--   {"api_key": "bauth_...", "session_id": "s{n}"}
--
-- "{n}" in a body becomes a number unique to the request across threads and
-- runs (BENCH_RUN, a prefix each run sets anew), so every request opens a
-- new session: a warm-up run before a measured one would otherwise have
-- opened the measured run's first sessions, and those logins would reuse a
-- token instead. Requests without it are formatted
-- once, up front, so that the generator's own cost stays the same for every
-- server under test.
--
-- In those per-request bodies, "{key}" becomes an API key and, in their
-- headers, "{basic}" a Basic authorization of it: one key after another of
-- the file BENCH_KEYS names (one "API_KEY Basic ..." line per key), so that no
-- key holds more live sessions than a key may (MAX_SESSIONS_PER_KEY).

local specs = {}

local function load_specs(path)
  local file = assert(io.open(path, "r"), "cannot open " .. path)
  local text = file:read("*a")
  file:close()
  for block in (text .. "\n---\n"):gmatch("(.-)\n%-%-%-\n") do
    local head, rest = block:match("^%s*([^\n]*)\n?(.*)$")
    if head and head ~= "" then
      local method, path, weight = head:match("^(%S+)%s+(%S+)%s*(%d*)$")
      local header_text, body = rest, nil
      local blank = rest:find("\n\n", 1, true)
      if blank then
        header_text, body = rest:sub(1, blank - 1), rest:sub(blank + 2)
      elseif rest:sub(-1) == "\n" then
        header_text = rest:sub(1, -2)
      end
      -- One newline ends the body in the file; it is not part of the body.
      if body then body = body:gsub("\n$", "") end
      if body == "" then body = nil end
      local headers = {}
      for line in (header_text .. "\n"):gmatch("(.-)\n") do
        local name, value = line:match("^([^:]+):%s*(.*)$")
        if name then headers[name] = value end
      end
      specs[#specs + 1] = {
        method = method, path = path, headers = headers, body = body,
        weight = tonumber(weight) or 1,
        dynamic = body ~= nil and body:find("{n}", 1, true) ~= nil,
      }
    end
  end
end

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end

local keys = {}
local keys_file = os.getenv("BENCH_KEYS")
if keys_file and keys_file ~= "" then
  for line in io.lines(keys_file) do
    local api_key, basic = line:match("^(%S+)%s+(.+)$")
    if api_key then keys[#keys + 1] = { api_key = api_key, basic = basic } end
  end
end

local run_id = os.getenv("BENCH_RUN") or ""
local schedule = {}
local counter = 0
local position = 0

load_specs(os.getenv("BENCH_SPEC"))

if #specs == 1 and not specs[1].dynamic then
  -- One fixed request: wrk formats it once and sends it without calling
  -- into Lua per request, so the generator takes as little of the shared
  -- CPU as it can, whichever server it drives.
  local spec = specs[1]
  wrk.method, wrk.path, wrk.body = spec.method, spec.path, spec.body
  for name, value in pairs(spec.headers) do wrk.headers[name] = value end
else
  function init(args)
    for _, spec in ipairs(specs) do
      if not spec.dynamic then
        spec.request = wrk.format(spec.method, spec.path, spec.headers, spec.body)
      end
      for _ = 1, spec.weight do
        schedule[#schedule + 1] = spec
      end
    end
  end

  function request()
    position = position % #schedule + 1
    local spec = schedule[position]
    if not spec.dynamic then
      return spec.request
    end
    counter = counter + 1
    local n = run_id .. thread_id .. "-" .. counter
    local body = spec.body:gsub("{n}", n)
    local headers = spec.headers
    if #keys > 0 then
      local key = keys[counter % #keys + 1]
      body = body:gsub("{key}", key.api_key)
      headers = {}
      for name, value in pairs(spec.headers) do
        headers[name] = value:gsub("{basic}", key.basic)
      end
    end
    return wrk.format(spec.method, spec.path, headers, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"p999_us": %d, "max_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end

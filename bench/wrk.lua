-- One wrk script for every scenario. bench/run.py writes a Lua table per scenario (method, paths,
-- tokens, body kind, device ids...) and passes its file name after `--`; done() prints one line
-- "BENCH_RESULT {json}" that run.py parses: throughput, latency percentiles and status counts.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  config = dofile(args[1])
  statuses = {}
  counter = 0
  -- Different per thread and per run: event ids must not repeat across threads or runs.
  math.randomseed(os.time() * 1000 + thread_id * 7919)
  op_prefix = string.format("w%d-%d-%d", os.time(), thread_id, math.random(1, 1000000000))
end

local function uuid4()
  return string.format(
    "%08x-%04x-4%03x-%04x-%012x",
    math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffffff) * 0x10000 + math.random(0, 0xffff)
  )
end

local function now_ms()
  return os.time() * 1000
end

local function push_body(n)
  -- A device's push: a few sets on a bounded key space (stays far below the premium quota).
  local device = config.devices[(n % #config.devices) + 1]
  local ops = {}
  for i = 1, config.ops_per_push do
    local key = string.format("bench/%s/k%d", device, (n * config.ops_per_push + i) % config.keys_per_device)
    ops[i] = string.format(
      '{"op_id":"%s-%d-%d","key":"%s","op":"set","value":{"n":%d,"on":true},"hlc":"%d-%d"}',
      op_prefix, n, i, key, n, now_ms(), n % 100000
    )
  end
  return string.format('{"device_id":"%s","ops":[%s]}', device, table.concat(ops, ","))
end

local EVENT_NAMES = { "extension_opened", "filter_used", "contact_focused", "settings_synced" }

local function events_body()
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local events = {}
  for i = 1, config.events_per_batch do
    if i % 4 == 0 then
      events[i] = string.format(
        '{"id":"%s","name":"sync_roundtrip_ms","ts":"%s","value":%d,"props":{"direction":"pull"},'
          .. '"client":{"version":"1.4.2","browser":"chrome","os":"mac"}}',
        uuid4(), ts, math.random(20, 400)
      )
    else
      events[i] = string.format(
        '{"id":"%s","name":"%s","ts":"%s","props":{},"client":{"version":"1.4.2","browser":"chrome","os":"mac"}}',
        uuid4(), EVENT_NAMES[(i % #EVENT_NAMES) + 1], ts
      )
    end
  end
  return string.format('{"events":[%s]}', table.concat(events, ","))
end

function request()
  counter = counter + 1
  local headers = { ["Host"] = "127.0.0.1", ["Accept"] = "application/json" }
  if config.tokens then
    headers["Authorization"] = "Bearer " .. config.tokens[(counter % #config.tokens) + 1]
  end
  local body = nil
  if config.body == "push" then
    body = push_body(counter)
  elseif config.body == "events" then
    body = events_body()
  elseif config.body == "login" then
    local email = config.emails[(counter % #config.emails) + 1]
    body = string.format('{"email":"%s","password":"%s","device_name":"bench"}', email, config.password)
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  local path = config.paths[(counter % #config.paths) + 1]
  return wrk.format(config.method, path, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local thread_statuses = thread:get("statuses") or {}
    for status, count in pairs(thread_statuses) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local status_items, non2xx = {}, 0
  for status, count in pairs(counts) do
    table.insert(status_items, string.format('"%d":%d', status, count))
    if status < 200 or status > 299 then
      non2xx = non2xx + count
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f,"statuses":{%s},"non2xx":%d,"socket_errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, table.concat(status_items, ","), non2xx,
    e.connect, e.read, e.write, e.timeout
  ))
end

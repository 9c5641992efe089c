-- wrk script: POST a distinct Alertmanager v4 notification per request.
local counter = 0
local id = 0
function setup(thread)
  id = id + 1
  thread:set("id", id)
end
function request()
  counter = counter + 1
  local target = "w" .. tostring(id) .. "-" .. tostring(counter) .. "-" .. tostring(math.random(1, 1000000000))
  local body = '{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"VLLMHighP99Latency","anomaly":"latency","target":"'
    .. target .. '"},"startsAt":"2026-11-24T10:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]}'
  return wrk.format("POST", "/alerts/alertmanager",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-token"}, body)
end

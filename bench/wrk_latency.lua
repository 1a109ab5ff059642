-- wrk reports p50 and p99 but not p99.9: this prints all three (microseconds) for
-- bench/light_load.py.
done = function(summary, latency, requests)
  io.write(string.format("LATENCY p50=%d p99=%d p999=%d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end

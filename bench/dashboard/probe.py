"""probe.py - answer times of `nasctl serve` as a client sees them: for each
route, REPS requests on one keep-alive connection (as Prometheus and a
browser hold theirs), the first one dropped as warm-up.  Prints one line per
route:  route=PATH median_ms=M p95_ms=P bytes=B

    python3 probe.py PORT [REPS]
"""
import http.client
import statistics
import sys
import time

ROUTES = [("metrics", "/metrics"), ("status", "/api/status"), ("workers", "/api/workers"),
          ("history_sorted", "/api/history?sort=accuracy&order=desc&limit=100"),
          ("history_filtered", "/api/history?q=nor_conv_3x3~2&min_accuracy=0.8&limit=100"),
          ("pareto", "/api/pareto"), ("task", "/api/task/%d"), ("columns_all", "/api/columns?from=0")]


def main():
    port = int(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    task = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for name, route in ROUTES:
        route = route.replace("%d", str(task))
        times, size = [], 0
        n = reps if not route.startswith("/api/columns") else max(5, reps // 10)
        for i in range(n + 1):
            t0 = time.perf_counter()
            conn.request("GET", route)
            r = conn.getresponse()
            body = r.read()
            dt = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                sys.exit("probe: %s: HTTP %d" % (route, r.status))
            if i:
                times.append(dt)
            size = len(body)
        times.sort()
        print("name=%s route=%s median_ms=%.2f p95_ms=%.2f bytes=%d"
              % (name, route, statistics.median(times), times[int(0.95 * (len(times) - 1))], size))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Live ingest figures against a running cim-server (standard library only).

    python3 scripts/bench_live.py URL [--sensors 10000] [--batch 10000] [--seconds 10]
        [--mqtt HOST:PORT]

Registers N sensors, then for a fixed time posts batches of readings (every sensor in
turn, one reading per batch each) from 4 threads and prints readings/s stored, as the
server's own counters report them. With --mqtt it also times `mosquitto_pub -l` sending
the same number of messages to the broker with QoS 1: first to a topic nobody stores
(the broker's own pass-through rate), then to cim/sensors/{id} while the server
subscribes (stored readings/s). Prints figures; asserts nothing.
"""
import argparse
import json
import subprocess
import threading
import time
import urllib.request


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def stamp(i):
    s = 1_700_000_000 + i
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mqtt")
    a = ap.parse_args()
    base = a.url.rstrip("/")
    for i in range(a.sensors):
        call("POST", f"{base}/api/sensors", {"id": f"b{i:05d}", "kind": "bench", "unit": "1",
                                             "lon": 24.9 + (i % 100) * 1e-4, "lat": 60.1 + (i // 100) * 1e-4,
                                             "warn": 80, "alarm": 90, "period_s": 3600})
    before = call("GET", f"{base}/api/live/stats")["stored"]
    stop = time.time() + a.seconds
    counter = [0]
    lock = threading.Lock()

    def worker(w):
        step = 0
        while time.time() < stop:
            with lock:
                tick = counter[0]
                counter[0] += 1
            t = stamp(tick)
            batch = [{"sensor": f"b{(tick * a.batch + k) % a.sensors:05d}", "t": t, "value": float(k % 100)}
                     for k in range(a.batch)]
            call("POST", f"{base}/api/readings", batch)
            step += 1

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.time() - t0
    stored = call("GET", f"{base}/api/live/stats")["stored"] - before
    print(f"HTTP  {a.sensors} sensors, batches of {a.batch}: {stored} readings stored in {elapsed:.1f} s"
          f" = {stored / elapsed:,.0f} readings/s (acknowledged after commit)")

    if a.mqtt:
        host, port = a.mqtt.rsplit(":", 1)
        n = min(200_000, a.sensors * 20)
        for topic, label in (("bench/passthrough", "mosquitto alone"), (None, "through cim-server")):
            before = call("GET", f"{base}/api/live/stats")["stored"]
            lines = "\n".join(json.dumps({"t": stamp(10_000_000 + i), "value": float(i % 100)}) for i in range(n)) + "\n"
            t0 = time.time()
            subprocess.run(["mosquitto_pub", "-h", host, "-p", port, "-q", "1",
                            "-t", topic or "cim/sensors/b00000", "-l"], input=lines.encode(), check=True)
            got = n
            if topic is None:
                # Wait until the stored count stops growing: a flooded broker may drop
                # messages for its subscribers, so count what arrived, not what was sent.
                last, still = -1, 0
                while still < 20 and time.time() - t0 < 120:
                    got = call("GET", f"{base}/api/live/stats")["stored"] - before
                    still = still + 1 if got == last else 0
                    last = got
                    if got >= n:
                        break
                    time.sleep(0.1)
            elapsed = time.time() - t0
            print(f"MQTT  {label}: {got} of {n} QoS 1 messages in {elapsed:.1f} s = {got / elapsed:,.0f} msg/s")


if __name__ == "__main__":
    main()

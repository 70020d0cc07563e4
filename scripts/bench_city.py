#!/usr/bin/env python3
"""Helpers of scripts/bench_city.sh (standard library only).

  bench_city.py make N SOURCE.geojson OUT.geojsonl
      A city of N buildings: shifted copies of SOURCE's buildings on a square grid,
      as line-delimited GeoJSON (what both cim-ingest and tippecanoe -P read
      streaming). Each copy keeps its building's outline, name and height (from
      building:levels, 3 m a level, else 9 m) and gets a fresh id.

  bench_city.py serve URL LAYER OUT.json
      Drives a running cim-server: the first tile, then tiles at every zoom over the
      city, picks, 1 km box queries and OGC items (p50/p99 of each), then tile
      latencies while four large box queries run; writes the figures as JSON.
"""
import gzip
import json
import math
import re
import statistics
import sys
import threading
import time
import urllib.request


def rings_of(geometry):
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    return geometry["coordinates"]


def make(n, source, out):
    features = json.load(open(source))["features"]
    xs, ys = [], []
    for f in features:
        for poly in rings_of(f["geometry"]):
            for ring in poly:
                for x, y in ring:
                    xs.append(x)
                    ys.append(y)
    w, s, e, north = min(xs), min(ys), max(xs), max(ys)
    step_x, step_y = (e - w) * 1.05, (north - s) * 1.05
    copies = math.ceil(n / len(features))
    side = math.ceil(math.sqrt(copies))
    levels = re.compile(r'"building:levels"=>"(\d+)"')
    heights = []
    for f in features:
        m = levels.search(f["properties"].get("other_tags") or "")
        heights.append(3.0 * int(m.group(1)) if m else 9.0)
    written = 0
    with open(out, "w") as o:
        for c in range(copies):
            dx, dy = (c % side) * step_x, (c // side) * step_y
            for f, height in zip(features, heights):
                if written == n:
                    return
                geometry = {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[round(x + dx, 7), round(y + dy, 7)] for x, y in ring] for ring in poly]
                        for poly in rings_of(f["geometry"])
                    ],
                }
                props = {"building": f["properties"].get("building") or "yes", "height": height, "copy": c}
                if f["properties"].get("name"):
                    props["name"] = f["properties"]["name"]
                o.write(json.dumps({"type": "Feature", "id": written + 1, "properties": props,
                                    "geometry": geometry}, separators=(",", ":")))
                o.write("\n")
                written += 1


def fetch(url):
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept-Encoding": "gzip"}),
                                    timeout=600) as r:
            body = r.read()
            status = r.status
            if r.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    return status, body, (time.perf_counter() - start) * 1000.0


def percentiles(ms):
    ms = sorted(ms)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max_ms": round(ms[-1], 2)}


def tile_of(lon, lat, z):
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def serve(url, layer, out):
    figures = {}
    started = time.perf_counter()
    status, body, _ = fetch(f"{url}/tiles/{layer}.json")
    tilejson = json.loads(body)
    w, s, e, n = tilejson["bounds"]
    lon, lat = (w + e) / 2, (s + n) / 2
    x, y = tile_of(lon, lat, 14)
    status, _, ms = fetch(f"{url}/tiles/{layer}/14/{x}/{y}.mvt")
    figures["first_tile"] = {"status": status, "ms_after_first_request": round((time.perf_counter() - started) * 1000, 1)}
    tiles = []
    for z in range(tilejson["minzoom"], tilejson["maxzoom"] + 1):
        for k in range(20):
            tlon = w + (e - w) * ((k * 7919) % 100) / 100
            tlat = s + (n - s) * ((k * 104729) % 100) / 100
            tx, ty = tile_of(tlon, tlat, z)
            st, body, ms = fetch(f"{url}/tiles/{layer}/{z}/{tx}/{ty}.mvt")
            tiles.append(ms)
    figures["tiles"] = percentiles(tiles)
    km_lon, km_lat = 1 / (111.32 * math.cos(math.radians(lat))), 1 / 110.57
    boxes = []
    for k in range(100):
        bx = w + (e - w - km_lon) * ((k * 7919) % 1000) / 1000
        by = s + (n - s - km_lat) * ((k * 104729) % 1000) / 1000
        boxes.append((bx, by, bx + km_lon, by + km_lat))
    for name, make_url in [
        ("pick", lambda b: f"{url}/api/pick?lon={(b[0] + b[2]) / 2}&lat={(b[1] + b[3]) / 2}&layer={layer}"),
        ("query_1km", lambda b: f"{url}/api/query?bbox={b[0]},{b[1]},{b[2]},{b[3]}&layer={layer}&limit=10000"),
        ("ogc_items_1km", lambda b: f"{url}/collections/{layer}/items?bbox={b[0]},{b[1]},{b[2]},{b[3]}&limit=1000"),
    ]:
        figures[name] = percentiles([fetch(make_url(b))[2] for b in boxes])
    # Head-of-line blocking: tiles while four 10 km boxes are being answered.
    big = [(lon - 5 * km_lon + i * km_lon, lat - 5 * km_lat, lon + 5 * km_lon + i * km_lon, lat + 5 * km_lat)
           for i in range(4)]
    done = []
    threads = [threading.Thread(target=lambda b=b: done.append(
        fetch(f"{url}/api/query?bbox={b[0]},{b[1]},{b[2]},{b[3]}&layer={layer}&limit=10000")[2])) for b in big]
    for t in threads:
        t.start()
    during = []
    while any(t.is_alive() for t in threads) and len(during) < 5000:
        tx, ty = tile_of(lon, lat, 16)
        during.append(fetch(f"{url}/tiles/{layer}/16/{tx + len(during) % 7}/{ty}.mvt")[2])
    for t in threads:
        t.join()
    figures["tiles_during_4_large_queries"] = percentiles(during or [0.0])
    figures["large_queries_ms"] = [round(d, 1) for d in done]
    json.dump(figures, open(out, "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)

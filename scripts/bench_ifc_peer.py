"""IfcOpenShell's side of scripts/bench.sh's BIM rows: parse and geometry time of one
IFC file, as JSON. Geometry runs on every core (IfcOpenShell's iterator threads)."""
import json
import multiprocessing
import sys
import time

import ifcopenshell
import ifcopenshell.geom

path = sys.argv[1]
t0 = time.perf_counter()
model = ifcopenshell.open(path)
t1 = time.perf_counter()
settings = ifcopenshell.geom.settings()
settings.set("use-world-coords", True)
iterator = ifcopenshell.geom.iterator(settings, model, multiprocessing.cpu_count())
shapes = 0
if iterator.initialize():
    while True:
        shapes += 1
        if not iterator.next():
            break
t2 = time.perf_counter()
print(json.dumps({"parse_s": t1 - t0, "geometry_s": t2 - t1, "shapes": shapes}))

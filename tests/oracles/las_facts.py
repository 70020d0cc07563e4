"""Facts about a LAS/LAZ file as laspy (PyPI laspy[lazrs]) reads it, for the point
cloud tests: count, header box, classification histogram and a seeded sample.

usage: python3 las_facts.py FILE SAMPLE_SIZE
"""
import json
import sys

import laspy
import numpy as np

path, sample_size = sys.argv[1], int(sys.argv[2])
las = laspy.read(path)
h = las.header
x, y, z = np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)
classification = np.asarray(las.classification)
intensity = np.asarray(las.intensity)
classes, counts = np.unique(classification, return_counts=True)
rng = np.random.default_rng(7)
n = len(x)
picks = rng.choice(n, size=min(sample_size, n), replace=False) if n else []
wkt = None
for vlr in list(h.vlrs) + list(getattr(las, "evlrs", None) or []):
    if vlr.user_id == "LASF_Projection" and vlr.record_id == 2112:
        wkt = vlr.string if hasattr(vlr, "string") else bytes(vlr.record_data).decode().rstrip("\0")
print(json.dumps({
    "count": int(n),
    "header_count": int(h.point_count),
    "version": str(h.version),
    "point_format": int(h.point_format.id),
    "mins": [float(v) for v in h.mins],
    "maxs": [float(v) for v in h.maxs],
    "data_mins": [float(x.min()), float(y.min()), float(z.min())] if n else None,
    "data_maxs": [float(x.max()), float(y.max()), float(z.max())] if n else None,
    "classes": {str(int(c)): int(k) for c, k in zip(classes, counts)},
    "wkt": wkt,
    "sample": [
        {"x": float(x[i]), "y": float(y[i]), "z": float(z[i]),
         "intensity": int(intensity[i]), "class": int(classification[i])}
        for i in picks
    ],
}))

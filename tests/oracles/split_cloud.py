"""Writes a LAS 1.2 file (point format 3) with laspy, an independent writer, for the
viewer's point cloud screenshots: a 200 m x 100 m grid every 0.5 m (80 000 points),
no CRS (the test places it with --anchor). West half red RGB and class 2 (ground),
east half blue and class 6 (building); intensity rises from west to east; heights
rise 20 m from south to north.

usage: python3 split_cloud.py OUT.las
"""
import sys

import laspy
import numpy as np

out = sys.argv[1]
xs, ys = np.meshgrid(np.arange(0.0, 200.0, 0.5), np.arange(0.0, 100.0, 0.5))
xs, ys = xs.ravel() + 500000.0, ys.ravel() + 4000000.0
east = xs - 500000.0 >= 100.0
header = laspy.LasHeader(point_format=3, version="1.2")
header.scales = np.array([0.01, 0.01, 0.01])
header.offsets = np.array([500000.0, 4000000.0, 0.0])
las = laspy.LasData(header)
las.x, las.y = xs, ys
las.z = (ys - 4000000.0) / 100.0 * 20.0
las.red = np.where(east, 0, 65535).astype(np.uint16)
las.green = np.zeros(len(xs), dtype=np.uint16)
las.blue = np.where(east, 65535, 0).astype(np.uint16)
las.classification = np.where(east, 6, 2).astype(np.uint8)
las.intensity = ((xs - 500000.0) / 200.0 * 65535.0).astype(np.uint16)
las.write(out)
print(len(xs))

"""Generates a large point cloud for the point cloud benchmark by tiling a real
sample: copies of `laspy_autzen_trim.laz` (110 000 points, Oregon Lambert feet) laid
side by side on a grid, each copy jittered by up to half a foot, written in chunks so
memory stays flat. Writes LAS or LAZ (by the output's extension).

usage: python3 bench_points_gen.py SOURCE.laz OUTPUT.(las|laz) MIN_POINTS
"""
import math
import sys

import laspy
import numpy as np

source, output, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
src = laspy.read(source)
n = len(src.points)
copies = math.ceil(want / n)
side = math.ceil(math.sqrt(copies))
width = float(src.header.maxs[0] - src.header.mins[0]) + 1.0
height = float(src.header.maxs[1] - src.header.mins[1]) + 1.0
header = laspy.LasHeader(point_format=src.header.point_format, version=src.header.version)
header.offsets = src.header.offsets
header.scales = src.header.scales
for vlr in src.header.vlrs:
    header.vlrs.append(vlr)
rng = np.random.default_rng(1)
x0, y0, z0 = np.asarray(src.x), np.asarray(src.y), np.asarray(src.z)
with laspy.open(output, mode="w", header=header) as writer:
    for c in range(copies):
        i, j = c % side, c // side
        chunk = laspy.ScaleAwarePointRecord.zeros(n, header=header)
        for name in ("intensity", "classification", "red", "green", "blue", "return_number", "number_of_returns"):
            chunk[name] = src[name]
        chunk.x = x0 + i * width + rng.uniform(-0.5, 0.5, n)
        chunk.y = y0 + j * height + rng.uniform(-0.5, 0.5, n)
        chunk.z = z0 + rng.uniform(-0.5, 0.5, n)
        writer.write_points(chunk)
print(f"{copies * n} points in {output} ({side} x {side} grid of copies)")

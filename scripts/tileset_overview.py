#!/usr/bin/env python3
"""What a 3D Tiles client loads to show a whole layer: CesiumJS's rule, offline.

Usage: tileset_overview.py LAYER_DIR [SCREEN_HEIGHT_PX] [MAX_SSE]

Puts a camera straight above the centre of the tileset's root region, high enough
that the whole region fills the view (vertical field of view 60 degrees, as
CesiumJS's default), and walks the tileset (external tilesets followed) as CesiumJS
does: a tile is refined while its screen-space error, geometricError * height /
(distance * 2 tan(fov / 2)), is over MAX_SSE (16, CesiumJS's default). Every tile
reached is loaded under additive refinement; under replacement only the tiles where
refinement stops. Prints the tiles and bytes of content loaded, and the depth.
"""
import json
import math
import os
import sys

R = 6_378_137.0
FOV = math.radians(60.0)


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    layer = sys.argv[1]
    height_px = float(sys.argv[2]) if len(sys.argv) > 2 else 1080.0
    max_sse = float(sys.argv[3]) if len(sys.argv) > 3 else 16.0
    base = os.path.join(layer, "3dtiles")
    root_set = load(os.path.join(base, "tileset.json"))
    w, s, e, n, _, top = root_set["root"]["boundingVolume"]["region"]
    lon0, lat0 = (w + e) / 2, (s + n) / 2
    half_ns = (n - s) / 2 * R
    half_ew = (e - w) / 2 * R * math.cos(lat0) / (16 / 9)
    cam_h = max(half_ns, half_ew) / math.tan(FOV / 2) + top

    def distance(region):
        rw, rs, re, rn, _, rtop = region
        # The nearest point of the region's footprint to the camera's ground point.
        x = min(max(lon0, rw), re)
        y = min(max(lat0, rs), rn)
        dx = (x - lon0) * R * math.cos(lat0)
        dy = (y - lat0) * R
        dz = max(cam_h - rtop, 0.0)
        return max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-3)

    loaded = {"tiles": 0, "bytes": 0, "depth": 0}

    def content_bytes(directory, uri):
        return os.path.getsize(os.path.join(directory, uri))

    def walk(tile, directory, inherited_refine, depth):
        refine = tile.get("refine", inherited_refine)
        sse = tile["geometricError"] * height_px / (distance(tile["boundingVolume"]["region"]) * 2 * math.tan(FOV / 2))
        children = tile.get("children", [])
        content = tile.get("content")
        if content and content["uri"].endswith(".json"):
            sub_path = os.path.join(directory, content["uri"])
            sub = load(sub_path)
            walk(sub["root"], os.path.dirname(sub_path), refine, depth)
            return
        refines = sse > max_sse and children
        if content and (refine == "ADD" or not refines):
            loaded["tiles"] += 1
            loaded["bytes"] += content_bytes(directory, content["uri"])
            loaded["depth"] = max(loaded["depth"], depth)
        if refines:
            for child in children:
                walk(child, directory, refine, depth + 1)

    walk(root_set["root"], base, root_set["root"].get("refine", "REPLACE"), 0)
    print(
        json.dumps(
            {
                "camera_height_m": round(cam_h),
                "screen_height_px": height_px,
                "max_sse": max_sse,
                "tiles": loaded["tiles"],
                "mb": round(loaded["bytes"] / 1e6, 1),
                "deepest": loaded["depth"],
            }
        )
    )


if __name__ == "__main__":
    main()
